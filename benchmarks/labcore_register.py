"""Complete IMS registrations per second through the lab core (issue 3 benchmark).

One registration = REGISTER -> I-CSCF (UAR) -> S-CSCF (MAR) -> 401, then REGISTER
with the digest response -> I-CSCF (UAR) -> S-CSCF (SAR) -> 200 OK: two SIP
transactions through two proxies' transaction layers and four Cx requests to the HSS.

The lab core (HSS + I-CSCF + S-CSCF, :func:`webims.labcore.start_labcore`) runs alone
in a child process (uvloop, one thread, SQLite in WAL mode, as ``webims serve labcore``
runs it) with ``--subscribers`` SIP Digest users. SIPp (Debian ``sip-tester``) is the
load generator, in its own process: it computes the MD5 responses itself, one user per
call from an injection file, ``--in-flight`` registrations at a time, over UDP.

Figures, over the middle of the run (the first and last 10 % are left out): completed
registrations per second (the S-CSCF's 200 OKs, wall clock), the core process's CPU
time over the same interval, and registrations per CPU-second of the one core it
uses. SIPp shares this machine's cores, so the wall-clock rate is a lower bound.

    .venv/bin/python benchmarks/labcore_register.py [--registrations 4000] [--in-flight 64]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.connection
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

REALM = "ims.test"

SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="ims registration benchmark">
<send retrans="500"><![CDATA[
REGISTER sip:[field2] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
Max-Forwards: 70
From: <sip:[field0]@[field2]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[field0]@[field2]>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:[field0]@[local_ip]:[local_port]>
Path: <sip:pcscf@[local_ip]:[local_port];lr>
Supported: path
P-Visited-Network-ID: "[field2]"
Authorization: Digest username="[field0]@[field2]", realm="[field2]", nonce="", uri="sip:[field2]", \
response=""
Expires: 3600
Content-Length: 0

]]></send>
<recv response="100" optional="true"/>
<recv response="401" auth="true"/>
<send retrans="500"><![CDATA[
REGISTER sip:[field2] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
Max-Forwards: 70
From: <sip:[field0]@[field2]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[field0]@[field2]>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:[field0]@[local_ip]:[local_port]>
Path: <sip:pcscf@[local_ip]:[local_port];lr>
Supported: path
P-Visited-Network-ID: "[field2]"
[field1]
Expires: 3600
Content-Length: 0

]]></send>
<recv response="100" optional="true"/>
<recv response="200"/>
</scenario>
"""


def provision(db: Path, count: int) -> None:
    from webims.labcore.hss import SubscriberSpec, SubscriberStore
    from webims.store import Store

    with Store(db) as store:
        subs = SubscriberStore(store)
        for i in range(count):
            subs.add(
                SubscriberSpec(impi=f"user{i}@{REALM}", impus=(f"sip:user{i}@{REALM}",), password=f"pw{i}")
            )


def injection_file(path: Path, count: int) -> None:
    lines = ["SEQUENTIAL"]
    lines += [
        f"user{i};[authentication username=user{i}@{REALM} password=pw{i}];{REALM}" for i in range(count)
    ]
    path.write_text("\n".join(lines) + "\n")


def core_main(state_dir: str, pipe: multiprocessing.connection.Connection) -> None:
    import uvloop

    from webims.config import load_config
    from webims.labcore import start_labcore
    from webims.labcore.hss import SubscriberStore
    from webims.store import Store

    async def main() -> None:
        env = {
            "WEBIMS_STATE__DIR": state_dir,
            "WEBIMS_HSS__LISTEN_PORT": "0",
            "WEBIMS_HSS__ADMIN_PORT": "0",
            "WEBIMS_LABCORE__ICSCF_PORT": "0",
            "WEBIMS_LABCORE__SCSCF_PORT": "0",
            "WEBIMS_LABCORE__MEDIA_INTERWORKING": "off",
        }
        store = Store(Path(state_dir) / "hss.sqlite3")
        core = await start_labcore(
            load_config(None, environ=env), subscribers=SubscriberStore(store), iwf=None
        )
        pipe.send(core.icscf_address)
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, pipe.recv)
            if command == "cpu":
                pipe.send(
                    (time.monotonic(), time.process_time(), core.scscf.registrar.registrations_completed)
                )
            else:
                break
        await core.stop()
        store.close()

    uvloop.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--registrations", type=int, default=4000, help="SIPp calls (one registration each)")
    parser.add_argument("--in-flight", type=int, default=64, help="concurrent registrations (SIPp -l)")
    parser.add_argument("--rate", type=int, default=5000, help="SIPp call rate cap per second (-r)")
    args = parser.parse_args()
    sipp = shutil.which("sipp")
    if sipp is None:
        raise SystemExit("sipp not found: apt-get install sip-tester")

    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        provision(state / "hss.sqlite3", args.subscribers)
        injection_file(state / "users.csv", args.subscribers)
        (state / "register.xml").write_text(SCENARIO)
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=core_main, args=(str(state), child), daemon=True)
        proc.start()
        host, port = parent.recv()

        def sample() -> tuple[float, float, int]:
            parent.send("cpu")
            value: tuple[float, float, int] = parent.recv()
            return value

        command = [
            sipp, f"{host}:{port}", "-sf", str(state / "register.xml"), "-inf", str(state / "users.csv"),
            "-i", "127.0.0.1", "-p", "0", "-r", str(args.rate), "-l", str(args.in_flight),
            "-m", str(args.registrations), "-nostdin", "-timeout", "300s", "-max_recv_loops", "1000",
            "-trace_err", "-error_file", str(state / "errors.log"),
        ]  # fmt: skip
        print(
            f"lab core pid {proc.pid} ({args.subscribers} subscribers), SIPp: {args.registrations} "
            f"registrations, {args.in_flight} in flight"
        )
        samples = [sample()]
        sipp_proc = subprocess.Popen(command, cwd=state, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        while sipp_proc.poll() is None:
            time.sleep(0.25)
            samples.append(sample())
        samples.append(sample())
        parent.send("stop")
        proc.join(10)
        done = samples[-1][2] - samples[0][2]
        low, high = samples[0][2] + done * 0.1, samples[0][2] + done * 0.9
        window = [s for s in samples if low <= s[2] <= high] or samples
        (t0, c0, n0), (t1, c1, n1) = window[0], window[-1]
        rate = (n1 - n0) / (t1 - t0) if t1 > t0 else float("nan")
        cpu = (c1 - c0) / (t1 - t0) if t1 > t0 else float("nan")
        log = state / "errors.log"
        errors = log.read_text(errors="replace") if log.exists() else ""
        failed = errors.count("Aborting call") + errors.count("Unexpected")
        print(
            f"registrations completed: {done} of {args.registrations} "
            f"(SIPp exit status {sipp_proc.returncode}, {failed} failed)"
        )
        print(
            f"registrations/s: {rate:,.0f} (wall clock)  core CPU {cpu:4.2f} core  "
            f"-> {rate / cpu if cpu else float('nan'):,.0f} registrations per core CPU-second"
        )


if __name__ == "__main__":
    main()
