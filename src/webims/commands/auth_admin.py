"""Provisioning of the web authorization function (issue 4): ``webims user``,
``webims pool``, ``webims client`` and ``webims token``.  The actions live in
:mod:`webims.auth.cli`; this module only registers them as subcommands."""

from __future__ import annotations

import argparse

from webims.auth import cli as auth_cli
from webims.cli import command


@command("user", help="web users: add, list, remove, map to IMPI/IMPU or a pool",
         arguments=auth_cli.add_user_arguments)
def user(args: argparse.Namespace) -> int:
    return auth_cli.run(args)


@command("pool", help="IMPU pools: add, list, show allocations, release, remove",
         arguments=auth_cli.add_pool_arguments)
def pool(args: argparse.Namespace) -> int:
    return auth_cli.run(args)


@command("client", help="OAuth clients of the authorization function: add, list, remove",
         arguments=auth_cli.add_client_arguments)
def client(args: argparse.Namespace) -> int:
    return auth_cli.run(args)


@command("token", help="issue an access token (testing, scripts) or rotate signing keys",
         arguments=auth_cli.add_token_arguments)
def token(args: argparse.Namespace) -> int:
    return auth_cli.run(args)
