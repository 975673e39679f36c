"""webims.testing.netns: the body runs where only loopback exists, and its JSON comes back."""

from __future__ import annotations

from pathlib import Path

import pytest

from webims.testing.netns import NetnsError, netns_unavailable, run_python_in_netns

BODY = """
import json, socket, sys
names = [name for _, name in socket.if_nameindex()]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.connect(("192.0.2.1", 9))  # TEST-NET-1: with no route, connect() fails at once
    routed = True
except OSError:
    routed = False
print("noise before the result")
print(json.dumps({"interfaces": names, "routed": routed, "argv": sys.argv[1:]}))
"""


def _require() -> None:
    reason = netns_unavailable()
    if reason is not None:
        pytest.fail(f"network namespaces unavailable: {reason}", pytrace=False)


def test_body_sees_only_loopback(tmp_path: Path) -> None:
    _require()
    script = tmp_path / "body.py"
    script.write_text(BODY)
    result = run_python_in_netns(script, ["--x", "1"], timeout=60)
    assert result["interfaces"] == ["lo"]
    assert result["routed"] is False
    assert result["argv"] == ["--x", "1"]


def test_failing_body_raises_with_its_output(tmp_path: Path) -> None:
    _require()
    script = tmp_path / "bad.py"
    script.write_text("import sys\nprint('partial')\nsys.exit('boom in the body')\n")
    with pytest.raises(NetnsError) as info:
        run_python_in_netns(script, timeout=60)
    assert "boom in the body" in str(info.value)
    script.write_text("print('no json here')\n")
    with pytest.raises(NetnsError, match="no JSON"):
        run_python_in_netns(script, timeout=60)
