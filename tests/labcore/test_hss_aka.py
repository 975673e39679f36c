"""Milenage through MAR: the HSS's AKA vectors reproduce the 3GPP TS 35.208 §4.3 test data.

Each test set is provisioned (K, OP, AMF, and SQN_HE one SEQ step below the set's SQN,
so that the next vector uses exactly that SQN, TS 33.102 Annex C), RAND is injected
through the HSS's ``rand_source`` hook, and the MAA's RAND||AUTN, XRES, CK and IK are
compared with the values of TS 35.208. The vectors are the ones of tests/test_milenage.py.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from hss_harness import connect, mar, running, subscriber_store

from webims.aka import next_sqn
from webims.diameter import MultimediaAuthAnswer, ResultCode
from webims.labcore.hss import SubscriberSpec


def _vectors() -> dict[int, Any]:
    path = Path(__file__).resolve().parents[1] / "test_milenage.py"
    spec = importlib.util.spec_from_file_location("_ts35208_vectors", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    vectors: dict[int, Any] = module.TS_35_208
    return vectors


TS_35_208 = _vectors()


@pytest.mark.parametrize("n", sorted(TS_35_208))
@pytest.mark.parametrize("scheme", ["Digest-AKAv1-MD5", "Digest-AKAv2-MD5"])
async def test_mar_reproduces_ts_35_208(tmp_path: Path, n: int, scheme: str) -> None:
    t = TS_35_208[n]
    sqn = int(t.sqn, 16)
    previous = sqn - (1 << 5)  # one SEQ step below, same IND (5 IND bits, Annex C.3)
    assert next_sqn(previous) == sqn
    spec = SubscriberSpec(
        impi=f"set{n}@ims.test",
        impus=(f"sip:set{n}@ims.test",),
        k=bytes.fromhex(t.k),
        op=bytes.fromhex(t.op),
        amf=bytes.fromhex(t.amf),
        sqn=previous,
    )
    rand = bytes.fromhex(t.rand)
    with subscriber_store(tmp_path / "db", spec) as subs:
        assert subs.impi(spec.impi).opc == bytes.fromhex(t.opc)  # type: ignore[union-attr]
        async with running(subs, rand_source=lambda: rand, sqn_ind_bits=5) as hss:
            cx = await connect(hss)
            answer = await cx.request(mar(cx, spec.impi, spec.impus[0], scheme))
            maa = MultimediaAuthAnswer.from_message(answer)
            assert maa.result.result_code == ResultCode.DIAMETER_SUCCESS
            (item,) = maa.sip_auth_data_items
            ak = int(t.f5, 16)
            autn = (sqn ^ ak).to_bytes(6, "big") + bytes.fromhex(t.amf) + bytes.fromhex(t.f1)
            assert item.authentication_scheme == scheme
            assert item.authenticate == rand + autn  # SIP-Authenticate = RAND || AUTN
            assert item.authorization == bytes.fromhex(t.f2)  # SIP-Authorization = XRES
            assert item.confidentiality_key == bytes.fromhex(t.f3)  # CK
            assert item.integrity_key == bytes.fromhex(t.f4)  # IK
            assert subs.impi(spec.impi).sqn == sqn  # type: ignore[union-attr]
            await cx.close()
