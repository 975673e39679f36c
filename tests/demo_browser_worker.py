"""The README's main-job command, ``make demo``, run as a new user runs it; two browsers call.

Run by tests/test_demo_browser.py inside a loopback-only network namespace
(webims.testing.netns). From the repository root it runs ``make demo`` (which runs
scripts/setup.sh, quick when everything is installed, then ``.venv/bin/webims demo``)
with a fresh HOME and state directory and nothing else of ours in the environment,
waits for the URLs and demo credentials it prints, then with headless Chromium, in
two browser profiles:

- tab A opens the printed URL and logs in as alice through the login page (web-token:
  PKCE at the authorization function, Bearer token on REGISTER);
- tab B logs in as bob with his IMS password (ims-digest);
- A calls B, B answers, audio both ways (packets and audio energy at each browser),
  A hangs up;

then stops the demo as a person does, with Ctrl-C (SIGINT to the ``webims demo``
process), and reports its exit status and output. Screenshots in
test-artifacts/demo/. Prints one JSON object last.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "web")]

from wictest import (  # type: ignore[import-not-found]  # noqa: E402
    PageWatch,
    chromium,
    csp_violations,
    print_pages,
    text,
    wait_state,
    wic_audio,
)

from webims.testing.browser import Screenshots  # noqa: E402

ARTIFACTS = ROOT / "test-artifacts" / "demo"
READY = "Press Ctrl-C to stop"
START_SECONDS = 150.0  # set-up (a no-op when done) and the demo's start
STOP_SECONDS = 30.0
#: What a make run inside another make (``make test``) would pass on; a new user has none of it.
MAKE_VARIABLES = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES", "MAKE_TERMOUT", "MAKE_TERMERR")


class Demo:
    """``make demo`` as a subprocess (its own process group), its output collected."""

    def __init__(self, home: Path, state: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WEBIMS_") and k not in MAKE_VARIABLES}
        env.pop("VIRTUAL_ENV", None)
        env.update(HOME=str(home), WEBIMS_STATE__DIR=str(state), PYTHONUNBUFFERED="1")
        self.env = env
        self.lines: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            "make", "demo", cwd=ROOT, env=self.env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.lines.append(line.decode(errors="replace"))
            if READY in self.lines[-1]:
                self._ready.set()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    async def ready(self) -> None:
        assert self.proc is not None
        waiter = asyncio.ensure_future(self._ready.wait())
        exited = asyncio.ensure_future(self.proc.wait())
        done, _ = await asyncio.wait(
            {waiter, exited}, timeout=START_SECONDS, return_when=asyncio.FIRST_COMPLETED
        )
        waiter.cancel()
        exited.cancel()
        if waiter not in done:
            hint = ""
            if "setup:" in self.output:
                hint = ("\n(scripts/setup.sh had work to do and cannot download inside the namespace: "
                        "run `make setup` first)")  # fmt: skip
            why = "exited" if self.proc.returncode is not None else f"printed no URLs in {START_SECONDS:g} s"
            raise AssertionError(f"make demo {why}:\n{self.output[-6000:]}{hint}")

    def demo_pid(self) -> int:
        """The ``webims demo`` process under make (make runs it through the shell)."""
        assert self.proc is not None
        for pid in descendants(self.proc.pid):
            with contextlib.suppress(OSError):
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if any(a.endswith(b"/webims") for a in argv) and b"demo" in argv:
                    return pid
        raise AssertionError(f"no webims demo process under make (pid {self.proc.pid})")

    async def interrupt(self) -> int:
        """Ctrl-C: SIGINT to the demo; make's exit status (the demo's, passed on)."""
        assert self.proc is not None and self._reader is not None
        os.kill(self.demo_pid(), signal.SIGINT)
        try:
            status = await asyncio.wait_for(self.proc.wait(), STOP_SECONDS)
        except TimeoutError:
            raise AssertionError(f"make demo still running {STOP_SECONDS:g} s after SIGINT:\n"
                                 f"{self.output[-4000:]}") from None  # fmt: skip
        await asyncio.wait_for(self._reader, 10)
        return status

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)


def descendants(root: int) -> list[int]:
    """Every process below ``root``, nearest first (from /proc/<pid>/stat)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: list[int] = []
    frontier = [root]
    while frontier:
        children = [pid for pid, ppid in parents.items() if ppid in frontier]
        found += children
        frontier = children
    return found


def printed(output: str) -> tuple[str, dict[str, str]]:
    """The web client's URL and the demo users (name -> password) that ``webims demo`` printed."""
    url = re.search(r"web client and login:\s+(https://\S+)", output)
    if url is None:
        raise AssertionError(f"no web client URL in the demo's output:\n{output[-3000:]}")
    users = dict(re.findall(r"^\s+(\w+)\s+/\s+(\S+)\s", output, re.MULTILINE))
    return url.group(1), users


screenshot = Screenshots(ARTIFACTS)


async def call(url: str, users: dict[str, str], profiles: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with chromium(profiles / "a") as browser_a, chromium(profiles / "b") as browser_b:
        a = browser_a.pages[0] if browser_a.pages else await browser_a.new_page()
        b = browser_b.pages[0] if browser_b.pages else await browser_b.new_page()
        watches = [PageWatch(a), PageWatch(b)]
        try:
            # --- A: the printed URL, log in with the web account alice (the login page)
            response = await a.goto(url)
            out["page_status"] = response.status if response is not None else None
            await wait_state(a, "login")
            await screenshot(a, "01-a-login")
            await a.click("#web-login")
            await a.wait_for_url("**/authorize?*")
            await a.fill("#username", "alice")
            await a.fill("#password", users["alice"])
            await screenshot(a, "02-a-authorize")
            await a.click("button[type=submit]")
            await wait_state(a, "registered")
            out["a_identity"] = await text(a, "#identity")
            await screenshot(a, "03-a-registered")
            # --- B: bob with his IMS password
            await b.goto(url)
            await wait_state(b, "login")
            await b.click("#tab-ims-digest")
            await b.fill("#digest-impu", "sip:bob@ims.test")
            await b.fill("#digest-password", users["bob"])
            await b.click("#panel-ims-digest button[type=submit]")
            await wait_state(b, "registered")
            out["b_identity"] = await text(b, "#identity")
            await screenshot(b, "04-b-registered")
            # --- A calls B, B answers: audio both ways; A hangs up
            await a.fill("#target", "bob")
            await a.click("#call")
            await wait_state(b, "incoming")
            out["b_incoming_from"] = await text(b, "#incoming-from")
            await screenshot(b, "05-b-incoming")
            await b.click("#answer")
            await wait_state(b, "in-call")
            await wait_state(a, "in-call")
            await wic_audio(a, out, "a")
            await wic_audio(b, out, "b")
            await screenshot(a, "06-a-in-call")
            await screenshot(b, "07-b-in-call")
            await a.click("#hangup")
            await wait_state(a, "registered")
            await wait_state(b, "registered")
            out["b_after_hangup"] = await text(b, "#status")
            await screenshot(b, "08-b-after-hangup")
            out["csp"] = [*(await csp_violations(a)), *(await csp_violations(b))]
            out["page_errors"] = [e for w in watches for e in w.errors]
            return out
        except Exception:
            await print_pages((a, b), watches)
            raise


async def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="webims-make-demo-") as tmp:
        home, state = Path(tmp) / "home", Path(tmp) / "state"
        home.mkdir()
        demo = Demo(home, state)
        started = time.monotonic()
        await demo.start()
        try:
            await demo.ready()
            out: dict[str, Any] = {"start_seconds": round(time.monotonic() - started, 1)}
            url, users = printed(demo.output)
            out["url"] = url
            out["users"] = sorted(users)
            out["state_files"] = sorted(p.name for p in state.iterdir())
            out.update(await asyncio.wait_for(call(url, users, Path(tmp) / "profiles"), 150))
            out["exit_status"] = await demo.interrupt()
        except BaseException:
            print(f"--- make demo output:\n{demo.output[-6000:]}", file=sys.stderr)
            raise
        finally:
            demo.kill()
        out["output"] = demo.output[-8000:]
        return out


if __name__ == "__main__":
    result = asyncio.run(main())
    sys.stdout.write(json.dumps(result) + "\n")
