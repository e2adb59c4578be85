"""The brokers' SCRAM and PLAIN servers against kafka-python's own SCRAM client.

Properties, with random passwords and nonces: a correct exchange is accepted
and the server's signature verifies; any single altered byte of the client's
final message is refused; garbage in either step is a clean SaslFailure with
Kafka's generic wording, never another exception.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.net.sasl.scram import ScramClient

from testbed.kafka.sasl_mechanisms import Credentials, SaslFailure, ScramServer

MECHS = ["SCRAM-SHA-256", "SCRAM-SHA-512"]
# PBKDF2 at 4096 rounds costs milliseconds per example; keep the runs small.
SLOW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
passwords = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), min_size=1, max_size=40
)
nonces = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters=","),
                 min_size=1, max_size=40)  # fmt: skip


def _server(mech: str, password: str, server_nonce: str) -> ScramServer:
    creds = Credentials({"alice": password}, [mech], seed=3)
    server = creds.server(mech, nonce=lambda: server_nonce)
    assert isinstance(server, ScramServer)
    return server


@SLOW
@given(mech=st.sampled_from(MECHS), password=passwords, server_nonce=nonces)
def test_a_correct_proof_is_accepted_and_the_server_signs(
    mech: str, password: str, server_nonce: str
) -> None:
    server = _server(mech, password, server_nonce)
    client = ScramClient("alice", password, mech)
    server_first = server.step(client.first_message())
    client.process_server_first_message(server_first)
    assert server_first.startswith(b"r=" + client.nonce[: -len(server_nonce)])
    server_final = server.step(client.final_message())
    client.process_server_final_message(server_final)  # raises on a wrong signature
    assert server.complete and server.user == "alice"


@SLOW
@given(
    mech=st.sampled_from(MECHS),
    password=passwords,
    server_nonce=nonces,
    where=st.integers(min_value=0),
    delta=st.integers(min_value=1, max_value=255),
)
def test_any_altered_byte_of_the_client_final_message_is_refused(
    mech: str, password: str, server_nonce: str, where: int, delta: int
) -> None:
    server = _server(mech, password, server_nonce)
    client = ScramClient("alice", password, mech)
    client.process_server_first_message(server.step(client.first_message()))
    final = bytearray(client.final_message())
    final[where % len(final)] = (final[where % len(final)] + delta) % 256
    with pytest.raises(SaslFailure, match=f"invalid credentials with SASL mechanism {mech}$"):
        server.step(bytes(final))
    assert not server.complete


@SLOW
@given(mech=st.sampled_from(MECHS), password=passwords, other=passwords, server_nonce=nonces)
def test_a_wrong_password_is_refused(
    mech: str, password: str, other: str, server_nonce: str
) -> None:
    if other == password:
        other += "x"
    server = _server(mech, password, server_nonce)
    client = ScramClient("alice", other, mech)
    client.process_server_first_message(server.step(client.first_message()))
    with pytest.raises(SaslFailure):
        server.step(client.final_message())


@settings(max_examples=300, deadline=None)
@given(mech=st.sampled_from(MECHS), first=st.binary(max_size=200), final=st.binary(max_size=200))
def test_garbage_is_a_clean_sasl_failure(mech: str, first: bytes, final: bytes) -> None:
    server = _server(mech, "pw", "srv")
    try:
        server.step(first)
    except SaslFailure as exc:
        assert str(exc).endswith(f"SASL mechanism {mech}")
        with pytest.raises(SaslFailure):  # a failed exchange stays failed
            server.step(final)
        return
    with pytest.raises(SaslFailure):
        server.step(final)  # no proof made without the password verifies
    assert not server.complete


def test_an_unknown_user_gets_the_same_answer_as_a_wrong_password() -> None:
    server = _server("SCRAM-SHA-256", "pw", "srv")
    with pytest.raises(SaslFailure) as exc:
        server.step(ScramClient("mallory", "pw", "SCRAM-SHA-256").first_message())
    assert str(exc.value) == (
        "Authentication failed during authentication due to invalid credentials "
        "with SASL mechanism SCRAM-SHA-256"
    )


def test_librdkafka_before_2_6_1_repeats_its_nonce_and_is_accepted() -> None:
    """librdkafka#4895: the client nonce sent again in front of the full nonce, as
    Kafka 3.8.1-3.9 accept; the proof covers what was sent."""
    server = _server("SCRAM-SHA-256", "pw", "srv")
    client = ScramClient("alice", "pw", "SCRAM-SHA-256")
    cnonce = client.nonce
    server_first = server.step(client.first_message())
    full = server_first.split(b",")[0][2:]
    # What librdkafka 2.0 computes: the AuthMessage over its doubled nonce.
    params = dict(p.split(b"=", 1) for p in server_first.split(b","))
    salted = hashlib.pbkdf2_hmac("sha256", b"pw", base64.b64decode(params[b"s"]), 4096)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    without_proof = b"c=biws,r=" + cnonce + full
    auth = b"n=alice,r=" + cnonce + b"," + server_first + b"," + without_proof
    signature = hmac.digest(hashlib.sha256(client_key).digest(), auth, "sha256")
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    final = server.step(without_proof + b",p=" + base64.b64encode(proof))
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    assert final == b"v=" + base64.b64encode(hmac.digest(server_key, auth, "sha256"))
    assert server.complete


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (b"\0alice\0pw", None),
        (b"alice\0alice\0pw", None),
        (b"\0alice\0wrong", "Authentication failed: Invalid username or password"),
        (b"\0nobody\0pw", "Authentication failed: Invalid username or password"),
        (
            b"bob\0alice\0pw",
            "Authentication failed: Client requested an authorization id that is "
            "different from username",
        ),
        (b"\0alice", "invalid credentials with SASL mechanism PLAIN"),
        (b"\xff\0alice\0pw", "invalid credentials with SASL mechanism PLAIN"),
        (b"\0\0pw", "invalid credentials with SASL mechanism PLAIN"),
    ],
)
def test_plain(token: bytes, message: str | None) -> None:
    server = Credentials({"alice": "pw"}, ["PLAIN"]).server("PLAIN")
    if message is None:
        assert server.step(token) == b"" and server.complete and server.user == "alice"
        return
    with pytest.raises(SaslFailure, match=message):
        server.step(token)
    assert not server.complete


def test_credentials_keep_no_password() -> None:
    creds = Credentials({"alice": "s3cr3t-pw"}, seed=1)
    held = repr(vars(creds)).encode()
    assert b"s3cr3t-pw" not in held and b"s3cr3t-pw".hex().encode() not in held
