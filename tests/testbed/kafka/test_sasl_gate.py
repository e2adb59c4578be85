"""The SASL gate on raw frames: each state answers (or closes) as Kafka's
SaslServerAuthenticator does."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator

import pytest
from kafka.net.sasl.scram import ScramClient

from protoproxy_codecs.kafka import framing
from protoproxy_codecs.kafka.api_keys import ApiKey
from testbed.kafka import FakeKafkaCluster
from testbed.kafka.sasl_mechanisms import Credentials

from .helpers import RawClient

PLAIN_TOKEN = b"\0alice\0pw"


@pytest.fixture
async def cluster() -> AsyncIterator[FakeKafkaCluster]:
    creds = Credentials({"alice": "pw"}, ["PLAIN", "SCRAM-SHA-256"], seed=2)
    async with FakeKafkaCluster(brokers=1, seed=2, sasl=creds) as c:
        c.create_topic("t", 1)
        yield c


async def _closed(client: RawClient) -> bool:
    """The broker closed the connection (EOF), with nothing more to read."""
    return await asyncio.wait_for(client.reader.read(), 10) == b""


async def test_v1_plain_then_requests_are_served(cluster: FakeKafkaCluster) -> None:
    c = await RawClient.connect(cluster.bootstrap)
    assert (await c.request(ApiKey.API_VERSIONS, 3, {})).error_code == 0
    hs = await c.request(ApiKey.SASL_HANDSHAKE, 1, {"mechanism": "PLAIN"})
    assert (hs.error_code, hs.mechanisms) == (0, ["PLAIN", "SCRAM-SHA-256"])
    auth = await c.request(ApiKey.SASL_AUTHENTICATE, 2, {"auth_bytes": PLAIN_TOKEN})
    assert (auth.error_code, auth.auth_bytes, auth.session_lifetime_ms) == (0, b"", 0)
    md = await c.request(ApiKey.METADATA, 12, {"topics": None, "allow_auto_topic_creation": False})
    assert [t.name for t in md.topics] == ["t"]
    again = await c.request(ApiKey.SASL_HANDSHAKE, 1, {"mechanism": "PLAIN"})
    assert again.error_code == 34  # ILLEGAL_SASL_STATE once authenticated
    await c.close()


async def test_v0_handshake_switches_to_bare_tokens(cluster: FakeKafkaCluster) -> None:
    c = await RawClient.connect(cluster.bootstrap)
    assert (
        await c.request(ApiKey.SASL_HANDSHAKE, 0, {"mechanism": "SCRAM-SHA-256"})
    ).error_code == 0
    scram = ScramClient("alice", "pw", "SCRAM-SHA-256")

    async def token(data: bytes) -> bytes:
        return await c.send_raw(struct.pack(">i", len(data)) + data)

    scram.process_server_first_message(await token(scram.first_message()))
    scram.process_server_final_message(await token(scram.final_message()))
    md = await c.request(ApiKey.METADATA, 12, {"topics": None, "allow_auto_topic_creation": False})
    assert [t.name for t in md.topics] == ["t"]
    await c.close()


async def test_v0_plain_answers_an_empty_token(cluster: FakeKafkaCluster) -> None:
    c = await RawClient.connect(cluster.bootstrap)
    assert (await c.request(ApiKey.SASL_HANDSHAKE, 0, {"mechanism": "PLAIN"})).error_code == 0
    assert await c.send_raw(struct.pack(">i", len(PLAIN_TOKEN)) + PLAIN_TOKEN) == b""
    assert (await c.request(ApiKey.API_VERSIONS, 3, {})).error_code == 0
    await c.close()


async def test_v0_wrong_password_closes(cluster: FakeKafkaCluster) -> None:
    c = await RawClient.connect(cluster.bootstrap)
    assert (await c.request(ApiKey.SASL_HANDSHAKE, 0, {"mechanism": "PLAIN"})).error_code == 0
    bad = b"\0alice\0nope"
    c.writer.write(struct.pack(">i", len(bad)) + bad)
    assert await _closed(c)
    assert cluster.sasl_failures == 1


async def test_unknown_mechanism_lists_the_enabled_ones_then_closes(
    cluster: FakeKafkaCluster,
) -> None:
    c = await RawClient.connect(cluster.bootstrap)
    hs = await c.request(ApiKey.SASL_HANDSHAKE, 1, {"mechanism": "GSSAPI"})
    assert (hs.error_code, hs.mechanisms) == (33, ["PLAIN", "SCRAM-SHA-256"])
    assert await _closed(c)


async def test_a_request_before_authentication_closes_without_an_answer(
    cluster: FakeKafkaCluster,
) -> None:
    c = await RawClient.connect(cluster.bootstrap)
    c.writer.write(
        framing.encode_request(
            ApiKey.METADATA, 12, 1, "x", {"topics": None, "allow_auto_topic_creation": False}
        )
    )
    assert await _closed(c)
    assert cluster.requests_by_api[ApiKey.METADATA] == 0


async def test_another_request_mid_authentication_is_illegal_state_then_closed(
    cluster: FakeKafkaCluster,
) -> None:
    c = await RawClient.connect(cluster.bootstrap)
    assert (await c.request(ApiKey.SASL_HANDSHAKE, 1, {"mechanism": "PLAIN"})).error_code == 0
    md = await c.request(ApiKey.METADATA, 12, {"topics": None, "allow_auto_topic_creation": False})
    assert md.topics == [] or all(t.error_code for t in md.topics)
    assert await _closed(c)


async def test_wrong_password_is_58_with_kafkas_message_then_closed(
    cluster: FakeKafkaCluster,
) -> None:
    c = await RawClient.connect(cluster.bootstrap)
    assert (
        await c.request(ApiKey.SASL_HANDSHAKE, 1, {"mechanism": "SCRAM-SHA-256"})
    ).error_code == 0
    scram = ScramClient("alice", "wrong", "SCRAM-SHA-256")
    first = await c.request(ApiKey.SASL_AUTHENTICATE, 2, {"auth_bytes": scram.first_message()})
    scram.process_server_first_message(first.auth_bytes)
    final = await c.request(ApiKey.SASL_AUTHENTICATE, 2, {"auth_bytes": scram.final_message()})
    assert final.error_code == 58
    assert final.error_message == (
        "Authentication failed during authentication due to invalid credentials "
        "with SASL mechanism SCRAM-SHA-256"
    )
    assert await _closed(c)


async def test_without_sasl_the_sasl_apis_answer_illegal_state() -> None:
    async with FakeKafkaCluster(brokers=1) as plain:
        c = await RawClient.connect(plain.bootstrap)
        assert (await c.request(ApiKey.SASL_HANDSHAKE, 1, {"mechanism": "PLAIN"})).error_code == 34
        auth = await c.request(ApiKey.SASL_AUTHENTICATE, 1, {"auth_bytes": PLAIN_TOKEN})
        assert auth.error_code == 34
        await c.close()
