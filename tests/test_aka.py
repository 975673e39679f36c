"""AKA vectors, the USIM side, resynchronisation (TS 33.102 §6.3, Annex C) and the
Digest-AKA helpers (RFC 3310, RFC 4169)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from webims.aka import (
    AkaFormatError,
    AkaMacFailure,
    AkaSyncFailure,
    AutsMacFailure,
    Usim,
    UsimSqnState,
    akav1_password,
    akav2_password,
    build_aka_nonce,
    decode_auts,
    encode_auts,
    generate_auts,
    generate_vector,
    join_sqn,
    next_sqn,
    parse_aka_nonce,
    resync_sqn,
    split_autn,
    split_sqn,
    sqn_from_bytes,
    sqn_to_bytes,
    verify_autn,
    verify_auts,
)

h = bytes.fromhex

# TS 35.208 §4.3.1 (test set 1) and §4.3.20 (test set 20).
K1, OPC1 = h("465b5ce8b199b49faa5f0a2ee238a6bc"), h("cd63cb71954a9f4e48a5994e37a02baf")
RAND1, SQN1, AMF1 = h("23553cbe9637a89d218ae64dae47bf35"), 0xFF9BB4D0B607, h("b9b9")
K20, OPC20 = h("90dca4eda45b53cf0f12d7c9c3bc6a89"), h("cb9cccc4b9258e6dca4760379fb82581")
RAND20 = h("9fddc72092c6ad036b6e464789315b78")


def xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


# --- vectors -------------------------------------------------------------------------------------


def test_vector_from_test_set_1() -> None:
    av = generate_vector(K1, OPC1, AMF1, SQN1, rand=RAND1)
    # AUTN = SQN xor AK || AMF || MAC-A with AK = f5 and MAC-A = f1 of TS 35.208 set 1.
    expected_autn = xor(h("ff9bb4d0b607"), h("aa689c648370")) + AMF1 + h("4a9ffac354dfafb3")
    assert av.autn == expected_autn
    assert av.xres == h("a54211d5e3ba50bf")
    assert av.ck == h("b40ba9a3c58b2a05bbf0d987b21bf8cb")
    assert av.ik == h("f769bcd751044604127672711c6d3441")
    assert (av.rand, av.sqn) == (RAND1, SQN1)
    assert split_autn(av.autn) == (expected_autn[:6], AMF1, h("4a9ffac354dfafb3"))


def test_vector_rand_defaults_to_fresh_random() -> None:
    a = generate_vector(K1, OPC1, AMF1, 32)
    b = generate_vector(K1, OPC1, AMF1, 32)
    assert len(a.rand) == 16
    assert a.rand != b.rand


def test_usim_accepts_fresh_vector() -> None:
    av = generate_vector(K1, OPC1, AMF1, SQN1, rand=RAND1)
    usim = Usim(K1, OPC1, UsimSqnState(delta=None))  # SQN1 is far above a new card's 0
    result = usim.authenticate(av.rand, av.autn)
    assert (result.res, result.ck, result.ik) == (av.xres, av.ck, av.ik)
    assert (result.sqn, result.amf) == (SQN1, AMF1)
    seq, ind = split_sqn(SQN1)
    assert usim.sqn_state.seq_array[ind] == seq


def test_new_usim_refuses_a_jump_beyond_delta() -> None:
    av = generate_vector(K1, OPC1, AMF1, SQN1, rand=RAND1)
    with pytest.raises(AkaSyncFailure) as info:
        Usim(K1, OPC1).authenticate(av.rand, av.autn)
    assert info.value.sqn_ms == 0
    assert verify_auts(K1, OPC1, RAND1, info.value.auts) == 0


@pytest.mark.parametrize("byte", [0, 5, 6, 7, 8, 15])  # SQN xor AK, AMF, MAC-A
def test_tampered_autn_is_a_mac_failure(byte: int) -> None:
    av = generate_vector(K1, OPC1, AMF1, SQN1, rand=RAND1)
    autn = bytearray(av.autn)
    autn[byte] ^= 0x01
    with pytest.raises(AkaMacFailure):
        Usim(K1, OPC1).authenticate(av.rand, bytes(autn))


def test_other_subscriber_key_is_a_mac_failure() -> None:
    av = generate_vector(K1, OPC1, AMF1, SQN1, rand=RAND1)
    with pytest.raises(AkaMacFailure):
        verify_autn(K20, OPC20, av.rand, av.autn)


def test_mac_failure_leaves_sqn_state_alone() -> None:
    usim = Usim(K1, OPC1)
    av = generate_vector(K1, OPC1, AMF1, SQN1, rand=RAND1)
    with pytest.raises(AkaMacFailure):
        usim.authenticate(av.rand, av.autn[:15] + bytes([av.autn[15] ^ 1]))
    assert usim.sqn_state.seq_ms == 0


def test_replayed_vector_is_a_sync_failure_and_auts_resynchronises_the_hss() -> None:
    usim = Usim(K1, OPC1)
    first = generate_vector(K1, OPC1, AMF1, next_sqn(0))
    usim.authenticate(first.rand, first.autn)
    # The same SQN again (e.g. an HSS restored from backup): authentic but stale.
    replay = generate_vector(K1, OPC1, AMF1, first.sqn)
    with pytest.raises(AkaSyncFailure) as info:
        usim.authenticate(replay.rand, replay.autn)
    failure = info.value
    assert failure.sqn == first.sqn
    assert failure.sqn_ms == first.sqn
    assert len(failure.auts) == 14
    # HSS side: MAC-S checks out and yields SQN_MS (TS 33.102 §6.3.5).
    sqn_ms = verify_auts(K1, OPC1, replay.rand, failure.auts)
    assert sqn_ms == first.sqn
    sqn_he = resync_sqn(replay.sqn, sqn_ms)
    fresh = generate_vector(K1, OPC1, AMF1, next_sqn(sqn_he))
    assert usim.authenticate(fresh.rand, fresh.autn).sqn == fresh.sqn


def test_hss_far_behind_usim_resets_to_sqn_ms() -> None:
    usim = Usim(K1, OPC1)
    ahead = generate_vector(K1, OPC1, AMF1, join_sqn(5000, 0))
    usim.authenticate(ahead.rand, ahead.autn)
    old = generate_vector(K1, OPC1, AMF1, join_sqn(10, 0))
    with pytest.raises(AkaSyncFailure) as info:
        usim.authenticate(old.rand, old.autn)
    sqn_ms = verify_auts(K1, OPC1, old.rand, info.value.auts)
    assert resync_sqn(old.sqn, sqn_ms) == sqn_ms
    assert split_sqn(next_sqn(sqn_ms)) == (5001, 0)


def test_auts_of_test_set_20_matches_a_published_one() -> None:
    # AUTS = SQN_MS xor AK* || MAC-S for SQN_MS = 1 (AK* = f5* of TS 35.208 set 20):
    # the value hostap's test-milenage.c checks with milenage_auts().
    auts = h("4f2039392ddd4bb4316ed4a14688")
    assert generate_auts(K20, OPC20, RAND20, 1) == auts
    assert verify_auts(K20, OPC20, RAND20, auts) == 1


def test_auts_from_a_test_usim_verifies() -> None:
    # hostap test-milenage.c: an AUTS returned by a real test USIM with set-20 keys, RAND = aa..aa.
    sqn_ms = verify_auts(K20, OPC20, b"\xaa" * 16, h("43681ad3daf006bcde405a207267"))
    assert generate_auts(K20, OPC20, b"\xaa" * 16, sqn_ms) == h("43681ad3daf006bcde405a207267")


@pytest.mark.parametrize("byte", [0, 5, 6, 13])
def test_tampered_auts_is_rejected(byte: int) -> None:
    auts = bytearray(generate_auts(K1, OPC1, RAND1, SQN1))
    auts[byte] ^= 0x80
    with pytest.raises(AutsMacFailure):
        verify_auts(K1, OPC1, RAND1, bytes(auts))


def test_auts_uses_the_dummy_amf() -> None:
    # MAC-S = f1*(SQN_MS || RAND || AMF = 0000): TS 35.208 set 1 gives f1* for AMF b9b9,
    # which must NOT be what AUTS carries.
    auts = generate_auts(K1, OPC1, RAND1, SQN1)
    assert auts[:6] == xor(sqn_to_bytes(SQN1), h("451e8beca43b"))
    assert auts[6:] != h("01cfaf9ec4e871e9")


@pytest.mark.parametrize("bad", [b"", bytes(13), bytes(15)])
def test_auts_length_is_checked(bad: bytes) -> None:
    with pytest.raises(AkaFormatError):
        verify_auts(K1, OPC1, RAND1, bad)


def test_autn_length_is_checked() -> None:
    with pytest.raises(AkaFormatError):
        verify_autn(K1, OPC1, RAND1, bytes(15))


# --- sequence numbers (TS 33.102 Annex C) -------------------------------------------------------


def test_sqn_split_join_bytes() -> None:
    assert split_sqn(0xFF9BB4D0B607) == (0xFF9BB4D0B607 >> 5, 0x07)
    assert join_sqn(*split_sqn(0xFF9BB4D0B607)) == 0xFF9BB4D0B607
    assert sqn_to_bytes(0x123) == h("000000000123")
    assert sqn_from_bytes(h("ffffffffffff")) == 2**48 - 1
    with pytest.raises(ValueError):
        sqn_to_bytes(2**48)
    with pytest.raises(ValueError):
        join_sqn(0, 32)


def test_next_sqn_steps_seq_and_keeps_or_sets_ind() -> None:
    assert next_sqn(0) == 32
    assert next_sqn(0x20 | 3) == 0x40 | 3
    assert next_sqn(0x40 | 3, ind=7) == 0x60 | 7
    assert next_sqn(2**48 - 1) == 31  # SEQ wraps, IND 31 kept


def test_usim_array_accepts_out_of_order_vectors_of_other_nodes() -> None:
    state = UsimSqnState()
    a, b = join_sqn(10, 1), join_sqn(9, 2)  # node 2 uses an older batch later
    assert state.is_fresh(a)
    state.accept(a)
    assert state.is_fresh(b)
    state.accept(b)
    assert not state.is_fresh(join_sqn(9, 2))  # same IND, same SEQ: replay
    assert not state.is_fresh(join_sqn(8, 1))
    assert state.sqn_ms == join_sqn(10, 1)


def test_usim_delta_limits_jumps() -> None:
    state = UsimSqnState(delta=100)
    assert state.is_fresh(join_sqn(100, 0))
    assert not state.is_fresh(join_sqn(101, 0))
    assert UsimSqnState(delta=None).is_fresh(join_sqn(2**40, 0))


def test_usim_age_limit() -> None:
    state = UsimSqnState(age_limit=5)
    state.accept(join_sqn(50, 0))
    assert state.is_fresh(join_sqn(46, 1))
    assert not state.is_fresh(join_sqn(45, 1))
    assert UsimSqnState().is_fresh(join_sqn(1, 1))


# --- Digest AKA (RFC 3310, RFC 4169) ------------------------------------------------------------


def test_aka_nonce_round_trip() -> None:
    av = generate_vector(K1, OPC1, AMF1, SQN1, rand=RAND1)
    nonce = build_aka_nonce(av.rand, av.autn, b"srv")
    assert base64.b64decode(nonce) == RAND1 + av.autn + b"srv"
    parsed = parse_aka_nonce(nonce)
    assert (parsed.rand, parsed.autn, parsed.server_data) == (RAND1, av.autn, b"srv")
    unpadded = build_aka_nonce(RAND1, av.autn).rstrip("=")
    assert parse_aka_nonce(unpadded).autn == av.autn


@pytest.mark.parametrize("bad", ["", "not*base64", base64.b64encode(bytes(31)).decode(), "é"])
def test_bad_aka_nonce(bad: str) -> None:
    with pytest.raises(AkaFormatError):
        parse_aka_nonce(bad)


def test_akav1_password_is_res() -> None:
    assert akav1_password(h("a54211d5e3ba50bf")) == h("a54211d5e3ba50bf")


def test_akav2_password_is_keyed_by_res_ik_ck() -> None:
    res, ck = h("a54211d5e3ba50bf"), h("b40ba9a3c58b2a05bbf0d987b21bf8cb")
    ik = h("f769bcd751044604127672711c6d3441")
    pw = akav2_password(res, ik, ck)
    mac = hmac.new(res + ik + ck, b"http-digest-akav2-password", hashlib.md5).digest()
    assert pw == base64.b64encode(mac)
    assert len(pw) == 24
    # key and message in the other order, or CK before IK, give something else
    assert pw != base64.b64encode(
        hmac.new(b"http-digest-akav2-password", res + ik + ck, hashlib.md5).digest()
    )
    assert pw != akav2_password(res, ck, ik)


def test_auts_directive_encoding() -> None:
    auts = h("4f2039392ddd4bb4316ed4a14688")
    assert encode_auts(auts) == "TyA5OS3dS7QxbtShRog="
    assert decode_auts("TyA5OS3dS7QxbtShRog=") == auts
    with pytest.raises(AkaFormatError):
        decode_auts(base64.b64encode(bytes(13)).decode())
    with pytest.raises(AkaFormatError):
        encode_auts(bytes(15))
