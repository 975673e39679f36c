"""``webims subscriber ...``: provision the lab HSS's IMS subscribers, and ask the running HSS
for network-initiated de-registration (RTR) and profile push (PPR).

::

    webims subscriber add --impi alice@ims.test --impu sip:alice@ims.test --impu tel:+15551000 \\
        --password secret --k 465b5ce8... --op cdc202d5... --amf 8000 --sqn 0
    webims subscriber list | show alice@ims.test | remove alice@ims.test
    webims subscriber set alice@ims.test --barred tel:+15551000 --sqn 0x20
    webims subscriber deregister alice@ims.test --reason permanent-termination
    webims subscriber push-profile alice@ims.test

Passwords are turned into HA1 = H(IMPI:realm:password) (MD5 and SHA-256) at once and
never stored; an OP is turned into OPc. The database is ``[state] db`` of the config.
``deregister`` and ``push-profile`` talk to the running HSS's admin endpoint
(``[hss] admin_host``/``admin_port``/``admin_token``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from webims.cli import EXIT_USAGE, CommandError, add_config_option, command, config_from_args

_REASONS = ("permanent-termination", "new-server-assigned", "server-change", "remove-s-cscf")


def _hex(n: int, name: str) -> Any:
    def parse(text: str) -> bytes:
        try:
            value = bytes.fromhex(text.replace(":", "").replace(" ", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be hexadecimal") from None
        if len(value) != n:
            raise argparse.ArgumentTypeError(f"{name} must be {n} bytes ({2 * n} hex digits)")
        return value

    return parse


def _sqn(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError("SQN must be a number (decimal or 0x-hex)") from None
    if not 0 <= value < 1 << 48:
        raise argparse.ArgumentTypeError("SQN must fit in 48 bits")
    return value


def _set(text: str) -> tuple[str, ...]:
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    if not items:
        raise argparse.ArgumentTypeError("an implicit set lists IMPUs separated by commas")
    return items


def _name(text: str) -> tuple[str, str]:
    impu, sep, name = text.partition("=")
    if not sep or not impu:
        raise argparse.ArgumentTypeError("expected IMPU=Display Name")
    return impu, name


def _impi_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("impi_pos", nargs="?", metavar="IMPI", help="private identity (or --impi)")
    p.add_argument("--impi", help="private identity, e.g. alice@ims.test")


def _credentials(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("credentials")
    pw = g.add_mutually_exclusive_group()
    pw.add_argument("--password", help="SIP digest password (only HA1 is stored)")
    pw.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    g.add_argument("--realm", help="digest realm of HA1 (default: the IMPI's domain, else [hss] realm)")
    g.add_argument("--digest-algorithm", choices=("MD5", "SHA-256"), help="HA1 sent in MAA (default MD5)")
    g.add_argument("--k", type=_hex(16, "K"), help="AKA subscriber key K (32 hex digits)")
    op = g.add_mutually_exclusive_group()
    op.add_argument("--op", type=_hex(16, "OP"), help="operator variant OP (stored as OPc)")
    op.add_argument("--opc", type=_hex(16, "OPc"), help="OPc")
    g.add_argument("--amf", type=_hex(2, "AMF"), help="AMF (4 hex digits, default 8000)")
    g.add_argument("--sqn", type=_sqn, help="SQN_HE, the last SQN used (TS 33.102 Annex C)")


def _identities(p: argparse.ArgumentParser, *, adding: bool) -> None:
    g = p.add_argument_group("public identities")
    if adding:
        g.add_argument("--impu", action="append", default=[], help="public identity (repeatable)")
        g.add_argument(
            "--wildcard", action="append", default=[], help="wildcarded IMPU, e.g. sip:!.*!@ims.test"
        )
    else:
        g.add_argument("--add-impu", action="append", default=[], help="add a public identity (repeatable)")
        g.add_argument("--remove-impu", action="append", default=[], help="remove a public identity")
        g.add_argument("--unbarred", action="append", default=[], help="lift barring of an IMPU")
        g.add_argument("--no-unreg-services", action="append", default=[], help="clear --unreg-services")
        g.add_argument("--clear-password", action="store_true", help="remove the digest credentials")
        g.add_argument("--clear-aka", action="store_true", help="remove the AKA credentials")
        g.add_argument("--ifc-clear", action="store_true", help="remove the initial filter criteria")
    g.add_argument("--barred", action="append", default=[], help="bar an IMPU (TS 29.228 BarringIndication)")
    g.add_argument(
        "--implicit-set",
        action="append",
        type=_set,
        default=[],
        metavar="IMPU,IMPU,...",
        help="IMPUs registered together (repeatable); IMPUs in no set share one set",
    )
    g.add_argument(
        "--unreg-services", action="append", default=[], help="IMPU with services when unregistered"
    )
    g.add_argument("--display-name", action="append", type=_name, default=[], metavar="IMPU=NAME")
    g.add_argument("--visited-network", action="append", default=None, help="allowed visited network (UAR)")
    g.add_argument("--ifc-file", help="file with <InitialFilterCriteria> elements (TS 29.228 Annex E)")


def _arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("add", help="create a subscriber")
    _impi_arg(p)
    _credentials(p)
    _identities(p, adding=True)
    p = sub.add_parser("set", help="change a subscriber")
    _impi_arg(p)
    _credentials(p)
    _identities(p, adding=False)
    p = sub.add_parser("list", help="list subscribers")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("show", help="show one subscriber")
    _impi_arg(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--secrets", action="store_true", help="also print K, OPc and HA1")
    p = sub.add_parser("remove", help="delete a subscriber")
    _impi_arg(p)
    p = sub.add_parser("deregister", help="network-initiated de-registration: RTR via the running HSS")
    _impi_arg(p)
    p.add_argument("--impu", action="append", default=[], help="only these IMPUs (and their implicit sets)")
    p.add_argument("--reason", choices=_REASONS, default="permanent-termination")
    p.add_argument("--info", help="Reason-Info text")
    p = sub.add_parser("push-profile", help="send the current profile to the S-CSCF: PPR via the running HSS")
    _impi_arg(p)
    for action in sub.choices.values():
        add_config_option(action)


def _impi(args: argparse.Namespace) -> str:
    impi = args.impi or args.impi_pos
    if not impi:
        raise CommandError("give the private identity (IMPI or --impi)", EXIT_USAGE)
    if args.impi and args.impi_pos and args.impi != args.impi_pos:
        raise CommandError("two different IMPIs given", EXIT_USAGE)
    return str(impi)


def _password(args: argparse.Namespace) -> str | None:
    if getattr(args, "password_stdin", False):
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise CommandError("empty password on standard input", EXIT_USAGE)
        return line
    password: str | None = args.password
    return password


def _ifc(args: argparse.Namespace) -> str | None:
    if not args.ifc_file:
        return None
    try:
        with open(args.ifc_file, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise CommandError(f"cannot read {args.ifc_file}: {exc}", EXIT_USAGE) from None


@command(
    "subscriber",
    help="provision IMS subscribers of the lab HSS (add, list, show, set, remove, deregister, push-profile)",
    arguments=_arguments,
)
def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    action: str = args.action
    if action in ("deregister", "push-profile"):
        return _admin(args, config)
    from webims.labcore.hss import ProvisioningError, open_subscribers

    subscribers = open_subscribers(config)
    try:
        return _provision(args, action, subscribers)
    except ProvisioningError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    finally:
        subscribers.store.close()


def _provision(args: argparse.Namespace, action: str, subscribers: Any) -> int:
    from webims.labcore.hss import SubscriberChanges, SubscriberSpec

    if action == "list":
        subs = subscribers.list()
        if args.json:
            print(json.dumps([_doc(s, secrets=False) for s in subs], indent=2))
        else:
            for s in subs:
                auth = "+".join(x for x, on in (("digest", s.impi.has_digest), ("aka", s.impi.has_aka)) if on)
                print(f"{s.impi.impi}\t{auth or 'no-credentials'}\t{' '.join(u.impu for u in s.impus)}")
        return 0
    impi = _impi(args)
    if action == "show":
        sub = subscribers.get(impi)
        if sub is None:
            raise CommandError(f"no subscriber {impi}")
        doc = _doc(sub, secrets=args.secrets)
        print(json.dumps(doc, indent=2) if args.json else _text(doc))
        return 0
    if action == "remove":
        if not subscribers.remove(impi):
            raise CommandError(f"no subscriber {impi}")
        print(f"removed {impi}")
        return 0
    password = _password(args)
    ifc = _ifc(args)
    if action == "add":
        impus = tuple(args.impu) + tuple(args.wildcard)
        from webims.labcore.hss import is_wildcarded

        for w in args.wildcard:
            if not is_wildcarded(w):
                raise CommandError(f"--wildcard {w}: no '!regex!' part (TS 23.003 §13.5)", EXIT_USAGE)
        spec = SubscriberSpec(
            impi=impi,
            impus=impus,
            password=password,
            realm=args.realm,
            k=args.k,
            op=args.op,
            opc=args.opc,
            sqn=args.sqn or 0,
            barred=frozenset(args.barred),
            implicit_sets=tuple(args.implicit_set),
            unreg_services=frozenset(args.unreg_services),
            display_names=tuple(args.display_name),
            visited_networks=tuple(args.visited_network or ()),
            ifc_xml=ifc or "",
            digest_algorithm=args.digest_algorithm or "MD5",
            **({"amf": args.amf} if args.amf is not None else {}),
        )
        sub = subscribers.add(spec)
        print(f"added {sub.impi.impi} ({len(sub.impus)} public identities)")
        return 0
    changes = SubscriberChanges(
        password=password,
        realm=args.realm,
        k=args.k,
        op=args.op,
        opc=args.opc,
        amf=args.amf,
        sqn=args.sqn,
        add_impus=tuple(args.add_impu),
        remove_impus=tuple(args.remove_impu),
        barred=tuple(args.barred),
        unbarred=tuple(args.unbarred),
        implicit_sets=tuple(args.implicit_set),
        unreg_services=tuple(args.unreg_services),
        no_unreg_services=tuple(args.no_unreg_services),
        display_names=tuple(args.display_name),
        visited_networks=tuple(args.visited_network) if args.visited_network is not None else None,
        ifc_xml="" if args.ifc_clear else ifc,
        digest_algorithm=args.digest_algorithm,
        clear_password=args.clear_password,
        clear_aka=args.clear_aka,
    )
    sub = subscribers.update(impi, changes)
    print(f"updated {sub.impi.impi}")
    return 0


def _doc(sub: Any, *, secrets: bool) -> dict[str, Any]:
    r = sub.impi
    doc: dict[str, Any] = {
        "impi": r.impi,
        "realm": r.realm,
        "digest": r.has_digest,
        "digest_algorithm": r.digest_algorithm,
        "aka": r.has_aka,
        "amf": r.amf.hex(),
        "sqn": r.sqn,
        "visited_networks": list(r.visited_networks),
        "ifc": bool(r.ifc_xml),
        "impus": [
            {
                "impu": u.impu,
                "implicit_set": u.irs,
                "barred": u.barred,
                "wildcard": u.wildcard,
                "display_name": u.display_name,
                "unreg_services": u.unreg_services,
                "state": u.reg_state.name,
                "scscf": u.scscf_name,
                "scscf_diameter_host": u.scscf_host,
            }
            for u in sub.impus
        ],
    }
    if secrets:
        doc.update(
            k=r.k.hex() if r.k else None,
            opc=r.opc.hex() if r.opc else None,
            ha1_md5=r.ha1_md5,
            ha1_sha256=r.ha1_sha256,
        )
    return doc


def _text(doc: dict[str, Any]) -> str:
    lines = [f"{k}: {v}" for k, v in doc.items() if k != "impus"]
    for u in doc["impus"]:
        flags = [x for x in ("barred", "wildcard", "unreg_services") if u[x]]
        extra = f" [{', '.join(flags)}]" if flags else ""
        scscf = f" at {u['scscf']}" if u["scscf"] else ""
        lines.append(f"impu: {u['impu']} (set {u['implicit_set']}) {u['state']}{scscf}{extra}")
    return "\n".join(lines)


def _admin(args: argparse.Namespace, config: Any) -> int:
    from webims.labcore.hss import AdminClientError, HssConfig, admin_call

    hss = config.get(HssConfig)
    if not hss.admin_port:
        raise CommandError("the HSS admin endpoint is disabled ([hss] admin_port = 0)")
    host = f"[{hss.admin_host}]" if ":" in hss.admin_host else hss.admin_host
    base = f"http://{host}:{hss.admin_port}"
    impi = _impi(args)
    if args.action == "deregister":
        payload: dict[str, Any] = {"impi": impi, "reason": args.reason, "impus": list(args.impu)}
        if args.info is not None:
            payload["info"] = args.info
        path = "/hss/deregister"
    else:
        payload = {"impi": impi}
        path = "/hss/push-profile"
    try:
        answer = admin_call(base, path, payload, token=hss.admin_token)
    except AdminClientError as exc:
        raise CommandError(str(exc)) from None
    code = answer.get("result_code") or answer.get("experimental_result_code")
    print(f"{answer.get('command')} to {answer.get('destination_host')}: result {code}")
    return 0 if answer.get("success") else 1
