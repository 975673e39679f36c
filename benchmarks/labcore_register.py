"""Complete IMS registrations per second through the lab core (issue 3 benchmark).

One registration (``--mode md5``, the default) = REGISTER -> I-CSCF (UAR) -> S-CSCF
(MAR) -> 401, then REGISTER with the digest response -> I-CSCF (UAR) -> S-CSCF (SAR)
-> 200 OK: two SIP transactions through two proxies' transaction layers and four Cx
requests to the HSS. ``--mode tna``: one REGISTER with ``integrity-protected="auth-done"``
from a trusted node (SIPp's address; TS 24.229 §5.4.1.2.2F) -> UAR, SAR, 200, what the
gateway's ``web-token`` mode costs the core. ``--reg-event`` adds what the gateway (as
P-CSCF) does after each first registration: SUBSCRIBE to the user's reg event along the
Service-Route, 200, NOTIFY, 200 (TS 24.229 §5.2.3); every registration is then a
user's first.

The lab core (HSS + I-CSCF + S-CSCF, :func:`webims.labcore.start_labcore`) runs alone
in a child process as ``webims serve labcore`` runs it (uvloop, one thread, SQLite in
WAL mode, the server garbage-collector settings of ``GcPolicy``; ``--gc default`` for
CPython's, ``--gc off`` to profile without the collector) with ``--subscribers`` SIP
Digest users. SIPp (Debian ``sip-tester``) is the load generator, in its own process:
it computes the MD5 responses itself, one user per call from an injection file,
``--in-flight`` registrations at a time, over UDP.

Figures, over the middle of the run (the first and last 10 % are left out): completed
registrations per second (the S-CSCF's 200 OKs, wall clock), the core process's CPU
time over the same interval, registrations per CPU-second of the one core it uses,
CPU milliseconds per registration and the share of it spent in the cyclic garbage
collector. SIPp shares this machine's cores, so the wall-clock rate is a lower bound.
``--profile FILE`` writes a cProfile of the core over the run (for ``pstats``; py-spy
on the printed pid works too).

    .venv/bin/python benchmarks/labcore_register.py [--mode md5|tna] [--reg-event]
        [--registrations 4000] [--in-flight 64]
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

#: The SIP Digest credentials of a first REGISTER (no challenge answered yet): the private
#: identity for the I-CSCF's UAR and the S-CSCF's MAR (TS 24.229 §5.1.1.2.1).
EMPTY_CREDENTIALS = (
    'Authorization: Digest username="[field0]@[field2]", realm="[field2]", nonce="", uri="sip:[field2]", '
    'response=""'
)


def register(cseq: int, authorization: str) -> str:
    """One REGISTER of user [field0] in [field2] through a P-CSCF (Path, P-Visited-Network-ID)."""
    return f"""<send retrans="500"><![CDATA[
REGISTER sip:[field2] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
Max-Forwards: 70
From: <sip:[field0]@[field2]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[field0]@[field2]>
Call-ID: [call_id]
CSeq: {cseq} REGISTER
Contact: <sip:[field0]@[local_ip]:[local_port]>
Path: <sip:pcscf@[local_ip]:[local_port];lr>
Supported: path
P-Visited-Network-ID: "[field2]"
{authorization}
Expires: 3600
Content-Length: 0

]]></send>
<recv response="100" optional="true"/>
"""


def scenario(mode: str, reg_event: str) -> str:
    """The SIPp scenario of one registration (then ``reg_event``, the SUBSCRIBE steps, if any).

    md5: REGISTER, 401 with the digest challenge (SIPp computes the response from the
    injection file's credentials, [field1]), REGISTER with it, 200. tna: Trusted Node
    Authentication (TS 24.229 §5.4.1.2.2F), one REGISTER with integrity-protected="auth-done"
    from a trusted address (SIPp's, 127.0.0.1), 200.
    """
    if mode == "md5":
        steps = register(1, EMPTY_CREDENTIALS) + '<recv response="401" auth="true"/>\n'
        steps += register(2, "[field1]")
    else:
        steps = register(1, EMPTY_CREDENTIALS + ', integrity-protected="auth-done"')
    return (
        '<?xml version="1.0" encoding="ISO-8859-1" ?>\n'
        f'<scenario name="ims {mode} registration benchmark">\n'
        f'{steps}<recv response="200"/>\n{reg_event}</scenario>\n'
    )


#: What the gateway (as P-CSCF) does after each first registration (TS 24.229 §5.2.3):
#: SUBSCRIBE to the user's reg event along the Service-Route (straight to the S-CSCF),
#: 200, then the S-CSCF's NOTIFY with the full reginfo (RFC 3680), answered 200.
REG_EVENT = """<nop><action><setdest host="{host}" port="{port}" protocol="udp"/></action></nop>
<send retrans="500"><![CDATA[
SUBSCRIBE sip:[field0]@[field2] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
Route: <sip:orig@{host}:{port};lr>
Max-Forwards: 70
From: <sip:[field0]@[field2]>;tag=[pid]SIPpSub[call_number]
To: <sip:[field0]@[field2]>
Call-ID: [call_id]
CSeq: 3 SUBSCRIBE
Contact: <sip:[field0]@[local_ip]:[local_port]>
Event: reg
Accept: application/reginfo+xml
Expires: 600000
Content-Length: 0

]]></send>
<recv response="200"/>
<recv request="NOTIFY"/>
<send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
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


def core_main(
    state_dir: str, pipe: multiprocessing.connection.Connection, profile: str | None, gc_mode: str
) -> None:
    import cProfile
    import gc

    gc_time = [0.0, 0.0]  # CPU seconds in the cyclic garbage collector, start of the current run

    def gc_callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_time[1] = time.process_time()
        else:
            gc_time[0] += time.process_time() - gc_time[1]

    gc.callbacks.append(gc_callback)

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
            "WEBIMS_LABCORE__TRUSTED_NODES": "127.0.0.1",
        }
        store = Store(Path(state_dir) / "hss.sqlite3")
        core = await start_labcore(
            load_config(None, environ=env), subscribers=SubscriberStore(store), iwf=None
        )
        pipe.send((core.icscf_address, core.scscf_address))
        loop = asyncio.get_running_loop()
        profiler = cProfile.Profile() if profile else None
        while True:
            command = await loop.run_in_executor(None, pipe.recv)
            if command == "profile-start" and profiler is not None:
                profiler.enable()
            elif command == "profile-stop" and profiler is not None and profile:
                profiler.disable()
                profiler.dump_stats(profile)
            elif command == "cpu":
                pipe.send(
                    (
                        time.monotonic(),
                        time.process_time(),
                        core.scscf.registrar.registrations_completed,
                        gc_time[0],
                    )
                )
            else:
                break
        await core.stop()
        store.close()

    from webims.transport.loop import GcPolicy
    from webims.transport.loop import run as run_loop

    # As `webims serve labcore` runs: uvloop and the server collector settings (GcPolicy).
    if gc_mode == "off":
        gc.disable()
    run_loop(main(), gc_policy=GcPolicy() if gc_mode == "policy" else None)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--registrations", type=int, default=4000, help="SIPp calls (one registration each)")
    parser.add_argument("--in-flight", type=int, default=64, help="concurrent registrations (SIPp -l)")
    parser.add_argument("--rate", type=int, default=5000, help="SIPp call rate cap per second (-r)")
    parser.add_argument(
        "--mode", choices=("md5", "tna"), default="md5",
        help="md5: REGISTER, 401, REGISTER, 200 (UAR, MAR, UAR, SAR); tna: one REGISTER with "
        'integrity-protected="auth-done" from a trusted node, 200 (UAR, SAR)',
    )  # fmt: skip
    parser.add_argument(
        "--reg-event", action="store_true",
        help="after each registration, SUBSCRIBE to its reg event and answer the NOTIFY (as the gateway "
        "does); one registration per user",
    )  # fmt: skip
    parser.add_argument("--profile", type=Path, help="cProfile the core process over the run into this file")
    parser.add_argument(
        "--gc", choices=("policy", "default", "off"), default="policy",
        help="collector settings of the core: GcPolicy (as `webims serve labcore`), CPython's "
        "defaults, or no automatic collection (to profile without it)",
    )  # fmt: skip
    args = parser.parse_args()
    sipp = shutil.which("sipp")
    if sipp is None:
        raise SystemExit("sipp not found: apt-get install sip-tester")

    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        if args.reg_event:  # one registration (and one subscription) per user, as the gateway's
            args.subscribers = max(args.subscribers, args.registrations)
        provision(state / "hss.sqlite3", args.subscribers)
        injection_file(state / "users.csv", args.subscribers)
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        profile = str(args.profile.resolve()) if args.profile else None
        proc = ctx.Process(target=core_main, args=(str(state), child, profile, args.gc), daemon=True)
        proc.start()
        (host, port), (scscf_host, scscf_port) = parent.recv()
        reg_event = REG_EVENT.format(host=scscf_host, port=scscf_port) if args.reg_event else ""
        (state / "register.xml").write_text(scenario(args.mode, reg_event))

        def sample() -> tuple[float, float, int, float]:
            parent.send("cpu")
            value: tuple[float, float, int, float] = parent.recv()
            return value

        command = [
            sipp, f"{host}:{port}", "-sf", str(state / "register.xml"), "-inf", str(state / "users.csv"),
            "-i", "127.0.0.1", "-p", "0", "-r", str(args.rate), "-l", str(args.in_flight),
            "-m", str(args.registrations), "-nostdin", "-timeout", "300s", "-max_recv_loops", "1000",
            "-trace_err", "-error_file", str(state / "errors.log"),
        ]  # fmt: skip
        print(
            f"lab core pid {proc.pid} ({args.subscribers} subscribers), SIPp: {args.registrations} "
            f"{args.mode} registrations{' + reg event' if args.reg_event else ''}, {args.in_flight} in flight"
        )
        if profile:
            parent.send("profile-start")
        samples = [sample()]
        sipp_proc = subprocess.Popen(command, cwd=state, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        while sipp_proc.poll() is None:
            time.sleep(0.25)
            samples.append(sample())
        samples.append(sample())
        if profile:
            parent.send("profile-stop")
        parent.send("stop")
        proc.join(10)
        done = samples[-1][2] - samples[0][2]
        low, high = samples[0][2] + done * 0.1, samples[0][2] + done * 0.9
        window = [s for s in samples if low <= s[2] <= high] or samples
        (t0, c0, n0, g0), (t1, c1, n1, g1) = window[0], window[-1]
        rate = (n1 - n0) / (t1 - t0) if t1 > t0 else float("nan")
        cpu = (c1 - c0) / (t1 - t0) if t1 > t0 else float("nan")
        per_registration = (c1 - c0) / (n1 - n0) * 1000 if n1 > n0 else float("nan")
        gc_share = (g1 - g0) / (c1 - c0) if c1 > c0 else float("nan")
        log = state / "errors.log"
        errors = log.read_text(errors="replace") if log.exists() else ""
        failed = errors.count("Aborting call") + errors.count("Unexpected")
        print(
            f"registrations completed: {done} of {args.registrations} "
            f"(SIPp exit status {sipp_proc.returncode}, {failed} failed)"
        )
        print(
            f"registrations/s: {rate:,.0f} (wall clock)  core CPU {cpu:4.2f} core  "
            f"-> {rate / cpu if cpu else float('nan'):,.0f} registrations per core CPU-second "
            f"({per_registration:.2f} ms CPU each, {gc_share:.0%} of it in the garbage collector)"
        )


if __name__ == "__main__":
    main()
