"""SIP parser throughput (issue 2): messages per second on one core.

Prints parse and parse+serialize rates for an 870-byte INVITE with SDP and for a
REGISTER; the last line is ``parse+serialize INVITE: <N> msg/s``.

Rates are per CPU-second of the benchmark process (one core), best of five rounds.
Each iteration parses a distinct message (Call-ID, branch, tags and user parts
vary) so that no cache sees the same header twice in a row.

    .venv/bin/python benchmarks/sip_parse.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import time

from webims.sip import parse

SDP = (
    "v=0\r\n"
    "o=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\n"
    "s=-\r\n"
    "c=IN IP4 192.0.2.101\r\n"
    "t=0 0\r\n"
    "m=audio 49172 RTP/AVP 0 8 96 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:96 AMR-WB/16000\r\n"
    "a=fmtp:96 mode-change-capability=2;max-red=0\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n"
    "a=ptime:20\r\n"
    "a=sendrecv\r\n"
)


def invite(i: int) -> bytes:
    head = (
        f"INVITE sip:bob{i % 1000}@biloxi.example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK{i:010d}x;rport\r\n"
        "Max-Forwards: 70\r\n"
        f'To: "Bob" <sip:bob{i % 1000}@biloxi.example.com>\r\n'
        f'From: "Alice" <sip:alice@atlanta.example.com>;tag={i:08d}\r\n'
        f"Call-ID: {i:012d}a84b4c76e66710@pc33.atlanta.example.com\r\n"
        "CSeq: 314159 INVITE\r\n"
        f"Contact: <sip:alice@192.0.2.101:5060;transport=udp>\r\n"
        "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, PRACK, INFO\r\n"
        "Supported: 100rel, timer\r\n"
        "User-Agent: webims-benchmark/0.1\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(SDP)}\r\n\r\n"
    )
    return (head + SDP).encode()


def register(i: int) -> bytes:
    return (
        "REGISTER sip:ims.test SIP/2.0\r\n"
        f"Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK{i:010d};rport\r\n"
        "Max-Forwards: 69\r\n"
        f'To: <sip:web-{i % 1000:03d}@ims.test>\r\n'
        f'From: <sip:web-{i % 1000:03d}@ims.test>;tag={i:08d}\r\n'
        f"Call-ID: {i:012d}ekpkc8a1mtdv\r\n"
        "CSeq: 2 REGISTER\r\n"
        f'Contact: <sip:{i:08x}@df7jal23ls0d.invalid;transport=ws>;+sip.ice;reg-id=1;'
        f'+sip.instance="<urn:uuid:{i:08d}-7d61-4ddd-9a2d-6ad54f4e4b9a>";expires=600\r\n'
        "Expires: 600\r\n"
        "Allow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY\r\n"
        "Supported: path,gruu,outbound\r\n"
        "User-Agent: JsSIP 3.10.1\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def rate(make: object, serialize: bool, seconds: float) -> float:
    """Messages per CPU-second of this process (so other load on the machine does not
    count against it), best of five rounds."""
    assert callable(make)
    messages = [make(i) for i in range(20_000)]
    best = 0.0
    for _ in range(5):
        count = 0
        start = time.process_time()
        deadline = time.perf_counter() + seconds / 5
        while True:
            for data in messages[count % 20_000 : count % 20_000 + 1000]:
                msg = parse(data)
                if serialize:
                    msg.serialize()
            count += 1000
            if time.perf_counter() >= deadline:
                break
        best = max(best, count / max(time.process_time() - start, 1e-9))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    print(f"INVITE size: {len(invite(0))} bytes, REGISTER size: {len(register(0))} bytes")
    results = {}
    for name, make in (("REGISTER", register), ("INVITE", invite)):
        for ser in (False, True):
            label = ("parse+serialize " if ser else "parse ") + name
            results[label] = rate(make, ser, args.seconds)
    for label in ("parse REGISTER", "parse+serialize REGISTER", "parse INVITE", "parse+serialize INVITE"):
        print(f"{label}: {results[label]:.0f} msg/s")


if __name__ == "__main__":
    main()
