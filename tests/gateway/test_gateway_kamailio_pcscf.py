"""Runs tests/gateway/kamailio_pcscf_cases.py (the gateway behind Kamailio 5.6's P-CSCF,
seed 004) with pytest in a network namespace that has only loopback.

Kamailio's ims_registrar_pcscf 5.6.3 does not start without ims_ipsec_pcscf, and that
module deletes every IPsec SA and policy of the network namespace it starts in: run on
the machine's own namespace, the test suite would tear down the IPsec tunnels (VPNs)
of whoever runs it. In ``unshare --net`` there is nothing to delete, and the gateway,
the webims HSS and the three Kamailio processes all meet on 127.0.0.1 inside it.

The inner run uses the suite's own options (no skips or expected failures allowed);
this test fails with its output when any case fails, and checks that every case ran.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from webims.testing.netns import netns_unavailable, run_in_netns

CASES = Path(__file__).with_name("kamailio_pcscf_cases.py")
ROOT = Path(__file__).resolve().parents[2]


def _case_names() -> list[str]:
    tree = ast.parse(CASES.read_text("utf-8"))
    return [
        node.name
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_")
    ]


def test_gateway_behind_kamailio_pcscf_in_a_network_namespace() -> None:
    why = netns_unavailable()
    assert why is None, f"network namespaces are needed here: {why}"
    names = _case_names()
    assert len(names) >= 10, names
    argv = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "webims.testing.no_skip",
        "--timeout=300", "-q", "-rA", "--no-header", str(CASES),
    ]  # fmt: skip
    proc = run_in_netns(argv, timeout=900, cwd=ROOT)
    output = proc.stdout[-30_000:] + proc.stderr[-10_000:]
    assert proc.returncode == 0, output
    passed = set(re.findall(r"^PASSED \S+::(test_\w+)", proc.stdout, re.M))
    assert passed == set(names), f"cases that did not pass: {sorted(set(names) - passed)}\n{output}"
