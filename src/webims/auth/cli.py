"""Command line of the web authorization function.

``register(subparsers)`` adds these subcommands to an argparse parser (the main
``webims`` program); each parser sets ``_run`` to :func:`run`::

    webims user add NAME [--password-stdin | --password PW] [--scope S ...] [--digest]
    webims user list [--json] | remove NAME
    webims user map NAME (--impi IMPI --impu IMPU [--impu ...] | --pool POOL)
                    [--scope S ...] [--allow PATTERN ...] [--deny PATTERN ...] [--cc CC]
    webims pool add NAME [--member IMPU|PATTERN ...] [--wildcard 'sip:web-!.*!@ims.test']
                    [--impi IMPI] [--capacity N]
    webims pool list [--json] | show NAME [--json] | remove NAME [--force]
    webims pool release NAME (--impu IMPU | --allocation ID | --all)
    webims client add ID [--confidential] [--secret S] [--redirect-uri URI ...]
                    [--grant TYPE ...] [--scope S ...]
    webims client list [--json] | remove ID
    webims token issue USER [--client ID] [--scope "register call"] [--ttl S] [--refresh] [--json]
    webims token rotate-keys
    webims serve auth                    (python -m webims.auth.cli only; the main CLI has serve)

Every command takes ``-c/--config FILE`` (default ``$WEBIMS_CONFIG``) and ``--db PATH``
(default: ``state.db`` of the config). Exit status: 0 success, 1 failure (the
message says why), 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .errors import AuthError
from .identity import SCOPES, DestinationRules

__all__ = ["build_parser", "main", "register", "run"]

Action = Callable[[argparse.Namespace, Any], int]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        default=os.environ.get("WEBIMS_CONFIG") or None,
        help="TOML config file (default: $WEBIMS_CONFIG, else built-in defaults)",
    )
    p.add_argument("--db", metavar="PATH", help="SQLite database (default: state.db of the config)")


def _action(sub: Any, name: str, fn: Action, help: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=help, description=help)
    _common(p)
    p.set_defaults(_auth=fn)
    return p


def _service(args: argparse.Namespace) -> Any:
    from webims.config import StateConfig, load_config
    from webims.store import Store

    from .config import AuthConfig
    from .service import AuthService, ServiceSettings

    config = load_config(args.config)
    cfg = config.get(AuthConfig)
    store = Store(args.db or config.get(StateConfig).db_path)
    service = AuthService(store, ServiceSettings.from_config(cfg), register_wic=False)
    if service.clients.find(cfg.wic_client_id) is None:
        service.register_wic_client()
    return service


def _out(args: argparse.Namespace, doc: Any, text: str) -> int:
    print(json.dumps(doc, indent=2) if getattr(args, "json", False) else text)
    return 0


# ---------------------------------------------------------------------------- user


def _password(args: argparse.Namespace) -> str:
    if args.password is not None:
        return str(args.password)
    if args.password_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the passwords differ")
    return first


def user_add(args: argparse.Namespace, service: Any) -> int:
    realm = service.settings.digest_realm if args.digest else None
    user = service.users.add(args.name, _password(args), scopes=args.scope or SCOPES, digest_realm=realm)
    print(f"user {user.username} added (scopes: {' '.join(user.scopes)}); map it with: webims user map")
    return 0


def user_list(args: argparse.Namespace, service: Any) -> int:
    from .http_admin import user_json

    users = service.users.list()
    lines = [
        f"{u.username:<24} {u.mapping:<48} {' '.join(u.scopes)}{'  (disabled)' if u.disabled else ''}"
        for u in users
    ]
    return _out(args, [user_json(u) for u in users], "\n".join(lines) or "no users")


def user_remove(args: argparse.Namespace, service: Any) -> int:
    service.users.remove(args.name)
    print(f"user {args.name} removed")
    return 0


def user_map(args: argparse.Namespace, service: Any) -> int:
    dest = None
    if args.allow or args.deny or args.cc:
        dest = DestinationRules(tuple(args.allow or ()), tuple(args.deny or ()), args.cc or "")
    if args.pool is None and not args.impu and args.scope is None and dest is None:
        raise ValueError("give --impi/--impu, or --pool (and/or --scope, --allow, --deny)")
    user = service.users.map(
        args.name, impi=args.impi, impus=args.impu or (), pool=args.pool, scopes=args.scope, dest=dest
    )
    print(f"user {user.username}: {user.mapping}")
    return 0


# ---------------------------------------------------------------------------- pool


def pool_add(args: argparse.Namespace, service: Any) -> int:
    pool = service.pools.add(
        args.name, members=args.member or (), wildcard=args.wildcard, impi=args.impi, capacity=args.capacity
    )
    what = f"{pool.members} IMPUs" if pool.members else f"wildcard {pool.wildcard}"
    print(f"pool {pool.name} added: {what}, capacity {pool.capacity}")
    return 0


def pool_list(args: argparse.Namespace, service: Any) -> int:
    from .http_admin import pool_json

    pools = service.pools.list()
    lines = [
        f"{p.name:<16} {p.allocated}/{p.capacity} allocated  "
        f"{(str(p.members) + ' members') if p.members else p.wildcard}"
        for p in pools
    ]
    return _out(args, [pool_json(p) for p in pools], "\n".join(lines) or "no pools")


def pool_show(args: argparse.Namespace, service: Any) -> int:
    from .http_admin import allocation_json, pool_json

    pool = service.pools.get(args.name)
    allocations = service.pools.allocations(args.name)
    doc = {**pool_json(pool), "allocations": [allocation_json(a) for a in allocations]}
    lines = [
        f"pool {pool.name}: {pool.allocated}/{pool.capacity} allocated, {pool.free} free",
        f"  impi: {pool.impi or '-'}   wildcard: {pool.wildcard or '-'}   members: {pool.members}",
    ]
    for a in allocations:
        lines.append(
            f"  {a.impu:<40} {a.holder:<20} {a.id}  lease ends {int(a.expires_at - service.clock())} s"
        )
    return _out(args, doc, "\n".join(lines))


def pool_release(args: argparse.Namespace, service: Any) -> int:
    if not (args.all or args.allocation or args.impu):
        raise ValueError("give --impu, --allocation or --all")
    released = service.pools.release_in(
        args.name, every=args.all, allocation=args.allocation or None, impu=args.impu or None
    )
    if not released:
        print(f"pool {args.name}: nothing to release", file=sys.stderr)
        return 1
    for r in released:
        print(f"released {r.impu} (held by {r.holder})")
    return 0


def pool_remove(args: argparse.Namespace, service: Any) -> int:
    service.pools.remove(args.name, force=args.force)
    print(f"pool {args.name} removed")
    return 0


# ---------------------------------------------------------------------------- client


def client_add(args: argparse.Namespace, service: Any) -> int:
    secret = args.secret
    if secret is None and args.confidential:
        secret = service.clients.new_secret()
    kwargs: dict[str, Any] = {"scopes": args.scope} if args.scope else {}
    client = service.clients.put(
        args.id, secret=secret, redirect_uris=args.redirect_uri or (), grant_types=args.grant, **kwargs
    )
    print(
        f"client {client.client_id} added ({'public' if client.public else 'confidential'}: "
        f"{' '.join(client.grant_types)})"
    )
    if secret is not None and args.secret is None:
        print(f"secret: {secret}")
    return 0


def client_list(args: argparse.Namespace, service: Any) -> int:
    from .http_admin import client_json

    clients = service.clients.list()
    lines = [
        f"{c.client_id:<20} {'public' if c.public else 'confidential':<13} {' '.join(c.grant_types)}"
        for c in clients
    ]
    return _out(args, [client_json(c) for c in clients], "\n".join(lines) or "no clients")


def client_remove(args: argparse.Namespace, service: Any) -> int:
    service.clients.remove(args.id)
    print(f"client {args.id} removed")
    return 0


# ---------------------------------------------------------------------------- token


def token_issue(args: argparse.Namespace, service: Any) -> int:
    issued = service.tokens.issue_for_user(
        args.user,
        client_id=args.client or service.settings.wic_client_id,
        scope=args.scope,
        ttl=args.ttl,
        refresh=args.refresh,
    )
    if args.json:
        doc = issued.response()
        doc["impu"] = list(issued.identity.impus)
        doc["allocation"] = issued.identity.allocation
        print(json.dumps(doc, indent=2))
    else:
        print(issued.access_token)
        if issued.refresh_token is not None:
            print(issued.refresh_token)
    return 0


def token_rotate(args: argparse.Namespace, service: Any) -> int:
    print(f"new signing key {service.rotate_keys()}")
    return 0


# ---------------------------------------------------------------------------- parsers


def add_user_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = _action(sub, "add", user_add, "add a web user (password hashed with argon2id)")
    p.add_argument("name")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--password", help="the password (visible to other local users: prefer --password-stdin)")
    g.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.add_argument("--scope", action="append", choices=SCOPES, help="allowed scope (repeat); default all")
    p.add_argument(
        "--digest", action="store_true", help="also store HTTP Digest HA1 (RFC 7616) for web login"
    )
    p = _action(sub, "list", user_list, "list web users and their IMS mapping")
    p.add_argument("--json", action="store_true")
    p = _action(sub, "remove", user_remove, "remove a web user")
    p.add_argument("name")
    p = _action(sub, "map", user_map, "map a web user to fixed IMS identities or to a pool")
    p.add_argument("name")
    p.add_argument("--impi", help="private identity, e.g. alice@ims.test")
    p.add_argument("--impu", action="append", help="public identity (repeat), e.g. sip:alice@ims.test")
    p.add_argument("--pool", help="allocate one IMPU of this pool per WIC")
    p.add_argument("--scope", action="append", choices=SCOPES, help="replace the allowed scopes (repeat)")
    p.add_argument("--allow", action="append", help="allowed destination pattern (repeat), e.g. 'tel:+1*'")
    p.add_argument(
        "--deny", action="append", help="denied destination (repeat): 'tel:+1900*', 'international'"
    )
    p.add_argument("--cc", help="home country code for 'international', e.g. 1")


def add_pool_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = _action(sub, "add", pool_add, "add an IMPU pool (list, pattern and/or wildcarded IMPU)")
    p.add_argument("name")
    p.add_argument(
        "--member", action="append", help="IMPU or pattern (repeat): 'sip:web-{000..999}@ims.test'"
    )
    p.add_argument("--wildcard", help="wildcarded IMPU (TS 23.003 §13.5): 'sip:web-!.*!@ims.test'")
    p.add_argument("--impi", help="IMPI the block is registered with")
    p.add_argument("--capacity", type=int, help="concurrent allocations (default: number of members)")
    p = _action(sub, "list", pool_list, "list pools and their use")
    p.add_argument("--json", action="store_true")
    p = _action(sub, "show", pool_show, "show a pool and its allocations")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p = _action(sub, "release", pool_release, "end IMPU leases")
    p.add_argument("name")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--impu")
    g.add_argument("--allocation")
    g.add_argument("--all", action="store_true")
    p = _action(sub, "remove", pool_remove, "remove a pool")
    p.add_argument("name")
    p.add_argument("--force", action="store_true", help="even with active allocations")


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = _action(sub, "add", client_add, "add an OAuth client")
    p.add_argument("id")
    p.add_argument("--confidential", action="store_true", help="generate a secret (printed once)")
    p.add_argument("--secret", help="use this secret (confidential client)")
    p.add_argument("--redirect-uri", action="append", help="registered redirect URI (repeat)")
    p.add_argument("--grant", action="append", help="authorization_code, refresh_token, client_credentials")
    p.add_argument("--scope", action="append", help="allowed scope (repeat): register call message pool")
    p = _action(sub, "list", client_list, "list OAuth clients")
    p.add_argument("--json", action="store_true")
    p = _action(sub, "remove", client_remove, "remove an OAuth client")
    p.add_argument("id")


def add_token_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = _action(sub, "issue", token_issue, "issue an access token for a user (tests, scripts)")
    p.add_argument("user")
    p.add_argument("--client", help="client id (default: auth.wic_client_id)")
    p.add_argument("--scope", help='space-separated scopes, e.g. "register call"')
    p.add_argument("--ttl", type=int, help="lifetime in seconds (default: auth.access_token_ttl)")
    p.add_argument("--refresh", action="store_true", help="also issue a refresh token")
    p.add_argument("--json", action="store_true")
    _action(sub, "rotate-keys", token_rotate, "start signing with a new key (the old one still verifies)")


def run(args: argparse.Namespace) -> int:
    """Run the parsed subcommand; errors are one line on stderr."""
    action: Action | None = getattr(args, "_auth", None)
    if action is None:
        print("webims: missing action (see --help)", file=sys.stderr)
        return 2
    from webims.config import ConfigError
    from webims.store import StoreError

    prog = f"webims {getattr(args, 'command', '')} {getattr(args, 'action', '')}".replace("  ", " ").strip()
    try:
        service = _service(args)
    except ConfigError as exc:
        print(f"{prog}: config error: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    try:
        return action(args, service)
    except (AuthError, ValueError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    finally:
        service.store.close()


_GROUPS = {
    "user": (add_user_arguments, "web users and their IMS identity mapping"),
    "pool": (add_pool_arguments, "IMPU pools and their allocations"),
    "client": (add_client_arguments, "OAuth clients of the authorization server"),
    "token": (add_token_arguments, "issue tokens, rotate signing keys"),
}


def register(subparsers: Any) -> None:
    """Add ``user``, ``pool``, ``client`` and ``token`` to an argparse subparsers object."""
    for name, (arguments, help) in _GROUPS.items():
        p = subparsers.add_parser(name, help=help, description=help)
        arguments(p)
        p.set_defaults(_run=run)


def _serve_auth(args: argparse.Namespace) -> int:
    from webims.config import ConfigError, load_config

    from .run import serve

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"webims serve auth: config error: {exc}", file=sys.stderr)
        return 2
    return serve(config)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="webims", description="webims authorization function commands")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register(sub)
    serve = sub.add_parser("serve", help="run a component")
    serve.add_argument("component", choices=["auth"])
    serve.add_argument("-c", "--config", metavar="FILE", default=os.environ.get("WEBIMS_CONFIG") or None)
    serve.set_defaults(_run=_serve_auth)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args._run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
