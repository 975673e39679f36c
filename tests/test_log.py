"""webims.log: the handler never writes secrets."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from webims.config import LogConfig
from webims.log import MASK, WebimsHandler, redact, setup_logging


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


REGISTER_AUTH = (
    'Authorization: Digest username="alice@ims.test", realm="ims.test", '
    'nonce="CjPk9mRqNuT25eRkajM09uTl9nM09uTl9nMz5OX25PZz==", uri="sip:ims.test", '
    'response="6629fae49393a05397450978507c4ef1", algorithm=AKAv1-MD5'
)
# TS 24.229 §5.4.1.2.1: the S-CSCF hands CK and IK to the P-CSCF in the 401
CHALLENGE = (
    'WWW-Authenticate: Digest realm="ims.test", nonce="CjPk9mRqNuT25eRkajM09uTl9nM09uTl9nMz5OX25PZz==", '
    'algorithm=AKAv1-MD5, ik="0123456789abcdeffedcba9876543210", ck="9876543210abcdeffedcba0123456789"'
)


@pytest.mark.parametrize(
    ("text", "kept", "hidden"),
    [
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer ***", "abc.def-ghi"),
        ("proxy-authorization: basic YWxpY2U6c2VjcmV0", "proxy-authorization: basic ***", "YWxpY2U6"),
        (REGISTER_AUTH, 'nonce="CjPk9mRq', "6629fae49393a05397450978507c4ef1"),
        (REGISTER_AUTH, 'username="alice@ims.test"', "6629fae4"),
        (CHALLENGE, 'ik="***", ck="***"', "0123456789abcdef"),
        ("login failed for bob password=hunter2 from 10.0.0.1", "password=*** from 10.0.0.1", "hunter2"),
        ("client_secret: 's3cr3t value'", "client_secret: ***", "s3cr3t"),
        ('{"user": "bob", "password": "p\\"w0rd", "x": 1}', '"password": "***"', "w0rd"),
        ("token=eyJ.x&state=1", "token=***&state=1", "eyJ.x"),
        # TS 35.208 test set 1 K and OPc
        (
            "K=465b5ce8b199b49faa5f0a2ee238a6bc OPc: cd63cb71954a9f4e48a5994e37a02baf",
            "K=*** OPc: ***",
            "cd63",
        ),
        ("redis://:pa55@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0", "pa55"),
        (
            "got eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl here",
            "got *** here",
            "eyJzdWIi",
        ),
    ],
)
def test_redact(text: str, kept: str, hidden: str) -> None:
    out = redact(text)
    assert kept in out
    assert hidden not in out


def test_redact_keeps_ordinary_text() -> None:
    text = "SIP/2.0 401 Unauthorized response=401 to REGISTER sip:ims.test (CSeq 1), key size 128"
    assert redact(text) == text


def test_redact_exact_secrets() -> None:
    assert redact("connecting with opensesame to db", ["opensesame", "ab"]) == f"connecting with {MASK} to db"


def test_handler_redacts_messages_args_and_tracebacks(restore_root: None) -> None:
    stream = io.StringIO()
    handler = setup_logging(LogConfig(level="debug"), stream=stream, secrets=["tlskeypass"])
    assert isinstance(handler, WebimsHandler)
    log = logging.getLogger("webims.test.child")
    log.debug("received\r\n%s\r\n", REGISTER_AUTH)
    log.info("key password is %s", "tlskeypass")
    try:
        raise RuntimeError("token=very-secret-token")
    except RuntimeError:
        log.exception("failed with Authorization: Bearer %s", "abcdef123")
    out = stream.getvalue()
    for secret in ("6629fae49393a05397450978507c4ef1", "tlskeypass", "very-secret-token", "abcdef123"):
        assert secret not in out
    assert "Traceback" in out and "RuntimeError: token=***" in out
    assert "webims.test.child" in out and "DEBUG" in out


def test_json_format_and_level(restore_root: None) -> None:
    stream = io.StringIO()
    setup_logging(LogConfig(level="warning", format="json"), stream=stream)
    logging.getLogger("webims.x").info("not shown")
    logging.getLogger("webims.x").warning("password=%s", "hunter2")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["level"] == "warning" and entry["logger"] == "webims.x"
    assert entry["message"] == "password=***"


def test_setup_twice_replaces_the_handler(restore_root: None) -> None:
    first, second = io.StringIO(), io.StringIO()
    setup_logging(LogConfig(), stream=first)
    setup_logging(LogConfig(), stream=second, level="debug")
    logging.getLogger("webims.y").debug("hello")
    assert first.getvalue() == "" and "hello" in second.getvalue()
    assert sum(isinstance(h, WebimsHandler) for h in logging.getLogger().handlers) == 1
