"""KafkaCodec: framing under any chunking, pairing, limits, acks=0, SASL, passthrough."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protoproxy_codecs import registry
from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, DecodeError, Limits, Sniff
from protoproxy_codecs.kafka import STATUS_OK, STATUS_UNDECODED, KafkaCodec, SecretView, framing
from protoproxy_codecs.strategies.kafka import all_versions, chunks, message_values

from .broker_side import respond, unredacted_view
from .helpers import feed_all, produce_request, record_batch


class FakeClock:
    """Half a second (in ns, as the codec's clock) later at every reading."""

    def __init__(self) -> None:
        self.now = 100 * 10**9

    def __call__(self) -> int:
        self.now += 5 * 10**8
        return self.now


def metadata_pair(corr: int, error: int = 0) -> tuple[bytes, bytes]:
    req = framing.encode_request(3, 12, corr, "app", {"topics": [{"name": "orders"}]})
    resp = framing.encode_response(
        3,
        12,
        corr,
        {
            "brokers": [{"node_id": 1, "host": "b1", "port": 9092}],
            "topics": [
                {
                    "name": "orders",
                    "error_code": 0,
                    "partitions": [{"partition_index": 0, "leader_id": 1, "error_code": error}],
                }
            ],
        },
    )
    return req, resp


# ---------------------------------------------------------------------------- basics


def test_request_response_exchange() -> None:
    codec = KafkaCodec(clock=FakeClock())
    req, resp = metadata_pair(7, error=6)
    (m,) = codec.feed(UPSTREAM, req)
    assert m.kind == "request" and m.key == 7 and m.raw == req
    assert m.info["api"] == "Metadata" and m.info["api_version"] == 12
    assert m.info["client_id"] == "app"
    assert m.info["header_size"] == 2 + 2 + 4 + 2 + 3 + 1
    assert m.view.topics[0].name == "orders"
    (r,) = codec.feed(DOWNSTREAM, resp)
    assert r.kind == "response" and r.key == 7 and r.raw == resp
    assert r.info["status"] == "NOT_LEADER_OR_FOLLOWER"
    assert r.view.brokers[0].host == "b1"
    (ex,) = codec.take_exchanges()
    assert ex.protocol == "kafka" and ex.operation == "Metadata v12"
    assert ex.status == "NOT_LEADER_OR_FOLLOWER"
    assert ex.attrs["errors"] == {"NOT_LEADER_OR_FOLLOWER": 1}
    assert ex.attrs["client_id"] == "app"
    assert (ex.request_bytes, ex.response_bytes) == (len(req), len(resp))
    assert ex.duration == 5 * 10**8  # one reading per feed: request, then response
    assert codec.take_exchanges() == []


def test_produce_records_and_status() -> None:
    codec = KafkaCodec()
    b1, b2 = record_batch(3, value_size=1000), record_batch(2)
    req = produce_request(11, {"orders": {0: b1, 1: b2}, "audit": {0: None}})
    (m,) = codec.feed(UPSTREAM, req)
    assert m.info["topics"] == ["orders", "audit"]
    assert m.info["record_count"] == 5
    assert m.info["record_bytes"] == len(b1) + len(b2)
    assert m.info["acks"] == -1 and m.info["expects_response"]
    resp = framing.encode_response(
        0,
        9,
        11,
        {"responses": [{"name": "orders", "partition_responses": [{"index": 0, "error_code": 0}]}]},
    )
    codec.feed(DOWNSTREAM, resp)
    (ex,) = codec.take_exchanges()
    assert ex.status == STATUS_OK
    assert ex.attrs["records"] == {
        "orders": {0: [3, len(b1)], 1: [2, len(b2)]},
        "audit": {0: [0, 0]},
    }
    assert ex.attrs["record_count"] == 5


def test_fetch_response_records() -> None:
    codec = KafkaCodec()
    req = framing.encode_request(
        1, 12, 3, "c", {"topics": [{"topic": "t", "partitions": [{"partition": 0}]}]}
    )
    (m,) = codec.feed(UPSTREAM, req)
    assert m.info["topics"] == ["t"]
    batch = record_batch(4) + record_batch(6)
    resp = framing.encode_response(
        1,
        12,
        3,
        {"responses": [{"topic": "t", "partitions": [{"partition_index": 0, "records": batch}]}]},
    )
    codec.feed(DOWNSTREAM, resp)
    (ex,) = codec.take_exchanges()
    assert ex.attrs["records"] == {"t": {0: [10, len(batch)]}}
    assert ex.attrs["record_bytes"] == len(batch)


def test_acks_zero_is_not_left_pending() -> None:
    codec = KafkaCodec(limits=Limits(max_pending=2))
    for corr in range(10):  # far beyond max_pending: none of them stays pending
        (m,) = codec.feed(UPSTREAM, produce_request(corr, {"t": {0: record_batch(1)}}, acks=0))
        assert not m.info["expects_response"]
    assert codec.pending == 0
    exchanges = codec.take_exchanges()
    assert len(exchanges) == 10
    assert all(e.status == STATUS_OK and e.response_bytes == 0 for e in exchanges)
    req, resp = metadata_pair(99)
    assert len(feed_all(codec, req, resp)) == 2
    assert codec.take_exchanges()[0].operation == "Metadata v12"


def test_responses_matched_by_correlation_not_order() -> None:
    codec = KafkaCodec()
    pairs = [metadata_pair(c) for c in (5, 6, 7)]
    codec.feed(UPSTREAM, b"".join(p[0] for p in pairs))
    got = codec.feed(DOWNSTREAM, pairs[2][1] + pairs[0][1] + pairs[1][1])
    assert [m.key for m in got] == [7, 5, 6]
    assert [e.key for e in codec.take_exchanges()] == [7, 5, 6]
    assert codec.pending == 0


# ---------------------------------------------------------------------------- chunking

_PAIR_VERSIONS = [(k, v) for k, v in all_versions() if k not in (17, 36)]


@st.composite
def conversations(draw: st.DrawFn) -> tuple[list[bytes], list[bytes], list[int]]:
    n = draw(st.integers(1, 5))
    corrs = draw(st.lists(st.integers(0, 2**31 - 1), min_size=n, max_size=n, unique=True))
    reqs, resps = [], []
    for corr in corrs:
        key, version = draw(st.sampled_from(_PAIR_VERSIONS))
        body = draw(message_values(key, version, True))
        if key == 0:
            body.acks = 1
        reqs.append(framing.encode_request(key, version, corr, "c", body))
        resps.append(
            framing.encode_response(key, version, corr, draw(message_values(key, version, False)))
        )
    order = draw(st.permutations(range(n)))
    return reqs, [resps[i] for i in order], [corrs[i] for i in order]


@given(conversations(), st.data())
def test_same_messages_under_any_chunking(conv, data: st.DataObject) -> None:
    reqs, resps, resp_corrs = conv
    up = data.draw(chunks(b"".join(reqs)))
    down = data.draw(chunks(b"".join(resps)))
    codec = KafkaCodec()
    got = {UPSTREAM: [], DOWNSTREAM: []}
    # All requests are sent before responses complete, but chunks interleave.
    down_at = data.draw(st.integers(0, len(up)))
    steps = [(UPSTREAM, c) for c in up[:down_at]]
    rest = [(UPSTREAM, c) for c in up[down_at:]] + [(DOWNSTREAM, c) for c in down]
    steps += rest
    for direction, chunk in steps:
        for m in codec.feed(direction, chunk):
            got[m.direction].append(m)
    assert [m.raw for m in got[UPSTREAM]] == reqs
    # A response arriving before its request is complete would be unmatched;
    # only check pairing where every request was complete first.
    assert b"".join(m.raw for m in got[DOWNSTREAM]) == b"".join(resps)
    if down_at == len(up):
        assert [m.key for m in got[DOWNSTREAM]] == resp_corrs
        assert [e.key for e in codec.take_exchanges()] == resp_corrs
        assert all(m.info.get("matched", True) for m in got[DOWNSTREAM])


def test_byte_at_a_time() -> None:
    codec = KafkaCodec()
    req, resp = metadata_pair(1)
    out = [m for b in req for m in codec.feed(UPSTREAM, bytes([b]))]
    out += [m for b in resp for m in codec.feed(DOWNSTREAM, bytearray([b]))]
    assert [m.raw for m in out] == [req, resp]


# ---------------------------------------------------------------------------- unknown traffic


def test_unknown_api_passes_through_counted() -> None:
    codec = KafkaCodec()
    body = b"\x01\x02\x03"
    req = struct.pack(">ihhih", 10 + 2 + len(body), 77, 0, 41, 2) + b"id" + body
    (m,) = codec.feed(UPSTREAM, req)
    assert m.raw == req and m.info["api"] == "Unknown(77)" and m.info["known"] is False
    assert m.view is None
    resp = struct.pack(">ii", 4 + 5, 41) + b"hello"
    (r,) = codec.feed(DOWNSTREAM, resp)
    assert r.raw == resp and r.key == 41
    (ex,) = codec.take_exchanges()
    assert ex.status == STATUS_UNDECODED and ex.operation == "Unknown(77) v0"
    assert codec.unknown[(77, 0)] == 1


def test_unknown_version_of_known_api() -> None:
    codec = KafkaCodec()
    req = struct.pack(">ihhih", 10, 3, 99, 1, -1)
    (m,) = codec.feed(UPSTREAM, req)
    assert m.info["api"] == "Metadata" and m.info["known"] is False
    assert codec.unknown[(3, 99)] == 1


def test_undecodable_body_is_forwarded_and_counted() -> None:
    codec = KafkaCodec()
    req = framing.encode_request(3, 12, 5, "x", {"topics": [{"name": "orders"}]})
    cut = struct.pack(">i", len(req) - 4 - 3) + req[4:-3]  # body runs past the frame
    (m,) = codec.feed(UPSTREAM, cut)
    assert m.raw == cut and m.view is None
    assert codec.undecodable[(3, 12, "request")] == 1
    produce = produce_request(6, {"t": {0: record_batch(1)}})
    (p,) = codec.feed(UPSTREAM, struct.pack(">i", len(produce) - 4 - 3) + produce[4:-3])
    assert "decode_error" in p.info and codec.undecodable[(0, 9, "request")] == 1
    # Metadata v12 response to corr 5: header (corr + empty tags), then no body at all.
    codec.feed(DOWNSTREAM, struct.pack(">i", 5) + b"\x00\x00\x00\x05\x00")
    assert codec.undecodable[(3, 12, "response")] == 1
    (ex,) = [e for e in codec.take_exchanges() if e.key == 5]
    assert ex.status == STATUS_UNDECODED


def test_trailing_bytes_are_ignored_like_kafka_does() -> None:
    """librdkafka 2.16 sends stray bytes after an all-topics Metadata v12 body."""
    codec = KafkaCodec()
    req = framing.encode_request(3, 12, 5, "x", {"topics": None})
    (m,) = codec.feed(UPSTREAM, struct.pack(">i", len(req) - 4 + 3) + req[4:] + b"zzz")
    assert m.view == framing.decode_request(req[4:])[1]
    produce = produce_request(6, {"t": {0: record_batch(2)}})
    (p,) = codec.feed(UPSTREAM, struct.pack(">i", len(produce) - 4 + 3) + produce[4:] + b"zzz")
    assert p.info["trailing_bytes"] == 3 and p.info["record_count"] == 2
    assert p.view is not None
    assert sum(codec.undecodable.values()) == 0


def test_unmatched_response_is_forwarded() -> None:
    codec = KafkaCodec()
    resp = struct.pack(">ii", 4, 123)
    (r,) = codec.feed(DOWNSTREAM, resp)
    assert r.info == {"correlation_id": 123, "matched": False} and r.raw == resp
    assert codec.unmatched_responses == 1


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (struct.pack(">i", -5), "negative_size"),
        (struct.pack(">i", 2_000_000), "frame_too_large"),
        (struct.pack(">i", 5) + b"\x00" * 5, "bad_header"),
        (struct.pack(">ihhih", 12, 3, 1, 1, 50) + b"ab", "bad_header"),
        (struct.pack(">ihhih", 10, 3, 1, 1, -7), "bad_header"),
        (struct.pack(">ihhih", 10, -3, 1, 1, -1), "bad_header"),
        # flexible header (Metadata v12) whose tagged-field count runs off the end
        (struct.pack(">ihhih", 11, 3, 12, 1, -1) + b"\x05", "bad_header"),
    ],
)
def test_bad_frames_raise_decode_error(frame: bytes, reason: str) -> None:
    codec = KafkaCodec(limits=Limits(max_message_size=1_000_000))
    with pytest.raises(DecodeError) as err:
        codec.feed(UPSTREAM, frame)
    assert err.value.reason == reason


def test_too_large_is_rejected_before_the_body_arrives() -> None:
    codec = KafkaCodec(limits=Limits(max_message_size=100))
    with pytest.raises(DecodeError, match="exceeds"):
        codec.feed(DOWNSTREAM, struct.pack(">i", 101))


def test_pending_is_bounded() -> None:
    codec = KafkaCodec(limits=Limits(max_pending=3))
    for corr in range(3):
        codec.feed(UPSTREAM, metadata_pair(corr)[0])
    with pytest.raises(DecodeError) as err:
        codec.feed(UPSTREAM, metadata_pair(3)[0])
    assert err.value.reason == "too_many_pending"


def test_duplicate_correlation_id() -> None:
    codec = KafkaCodec()
    codec.feed(UPSTREAM, metadata_pair(1)[0])
    with pytest.raises(DecodeError) as err:
        codec.feed(UPSTREAM, metadata_pair(1)[0])
    assert err.value.reason == "duplicate_correlation_id"


# ---------------------------------------------------------------------------- sniffing


def test_sniff() -> None:
    req, _ = metadata_pair(1)
    assert KafkaCodec.sniff(req) is Sniff.YES
    assert KafkaCodec.sniff(req[:8]) is Sniff.NEED_MORE
    assert KafkaCodec.sniff(b"GET / HTTP/1.1\r\n") is Sniff.NO
    assert KafkaCodec.sniff(struct.pack(">ihhih", 20, 77, 0, 1, 0)) is Sniff.NO  # unknown api
    assert KafkaCodec.sniff(struct.pack(">ihhih", 20, 3, 0, 1, 500)) is Sniff.NO  # client_id
    assert KafkaCodec.sniff(struct.pack(">i", 2**30)) is Sniff.NO
    assert registry.sniff(req) == ("kafka", Sniff.YES)


# ---------------------------------------------------------------------------- SASL

SECRET = b"\x00alice\x00s3cr3t-password"


def _handshake(codec: KafkaCodec, mechanism: str, version: int = 0, corr: int = 1) -> None:
    req = framing.encode_request(17, version, corr, "app", {"mechanism": mechanism})
    (m,) = codec.feed(UPSTREAM, req)
    assert m.info["sasl_mechanism"] == mechanism
    resp = framing.encode_response(17, version, corr, {"error_code": 0, "mechanisms": [mechanism]})
    (r,) = codec.feed(DOWNSTREAM, resp)
    assert r.info["status"] == STATUS_OK


def _no_secret_anywhere(*messages) -> None:
    for m in messages:
        assert b"s3cr3t" not in repr(m.info).encode() and b"s3cr3t" not in repr(m.view).encode()
        assert "s3cr3t" not in repr(m.view)


def test_sasl_v0_plain_raw_tokens() -> None:
    codec = KafkaCodec()
    _handshake(codec, "PLAIN")
    assert codec.in_sasl_token_mode
    token = struct.pack(">i", len(SECRET)) + SECRET
    (t,) = codec.feed(UPSTREAM, token)
    assert t.kind == "sasl_token" and t.info["secret"] is True and t.raw == token
    assert isinstance(t.view, SecretView) and t.view.size == len(token)
    assert unredacted_view(t) == SECRET
    (reply,) = codec.feed(DOWNSTREAM, struct.pack(">i", 0))
    assert reply.kind == "sasl_token"
    assert not codec.in_sasl_token_mode
    _no_secret_anywhere(t, reply)
    req, resp = metadata_pair(2)
    kinds = [m.kind for m in feed_all(codec, req, resp)]
    assert kinds == ["request", "response"]
    ops = [e.operation for e in codec.take_exchanges()]
    assert ops == ["SaslHandshake v0", "SaslToken", "Metadata v12"]


def test_sasl_v0_scram_two_rounds() -> None:
    codec = KafkaCodec()
    _handshake(codec, "SCRAM-SHA-256")
    for _ in range(2):
        (t,) = codec.feed(UPSTREAM, struct.pack(">i", 5) + b"n,,n=")
        assert t.kind == "sasl_token"
        (s,) = codec.feed(DOWNSTREAM, struct.pack(">i", 3) + b"r=x")
        assert s.kind == "sasl_token"
    assert not codec.in_sasl_token_mode


def test_sasl_v0_unknown_mechanism_ends_on_a_real_request() -> None:
    codec = KafkaCodec()
    _handshake(codec, "GSSAPI")
    for _ in range(3):
        assert codec.feed(UPSTREAM, struct.pack(">i", 4) + b"krb5")[0].kind == "sasl_token"
        assert codec.feed(DOWNSTREAM, struct.pack(">i", 2) + b"ok")[0].kind == "sasl_token"
    req, _ = metadata_pair(9)
    (m,) = codec.feed(UPSTREAM, req)
    assert m.kind == "request" and not codec.in_sasl_token_mode


def test_sasl_handshake_v1_then_authenticate_is_redacted() -> None:
    codec = KafkaCodec()
    _handshake(codec, "PLAIN", version=1)
    assert not codec.in_sasl_token_mode
    req = framing.encode_request(36, 2, 2, "app", {"auth_bytes": SECRET})
    (m,) = codec.feed(UPSTREAM, req)
    assert m.info["secret"] is True and m.info["sasl_mechanism"] == "PLAIN"
    assert isinstance(m.view, SecretView)
    assert unredacted_view(m).auth_bytes == SECRET
    resp = framing.encode_response(36, 2, 2, {"error_code": 0, "auth_bytes": b"s3cr3t-reply"})
    (r,) = codec.feed(DOWNSTREAM, resp)
    assert r.info["secret"] is True and isinstance(r.view, SecretView)
    _no_secret_anywhere(m, r)
    (ex,) = [e for e in codec.take_exchanges() if e.operation.startswith("SaslAuth")]
    assert "s3cr3t" not in repr(ex)


def test_failed_handshake_stays_in_kafka_mode() -> None:
    codec = KafkaCodec()
    req = framing.encode_request(17, 0, 1, "app", {"mechanism": "NOPE"})
    codec.feed(UPSTREAM, req)
    codec.feed(DOWNSTREAM, framing.encode_response(17, 0, 1, {"error_code": 33, "mechanisms": []}))
    assert not codec.in_sasl_token_mode
    assert codec.take_exchanges()[0].status == "UNSUPPORTED_SASL_MECHANISM"


# ---------------------------------------------------------------------------- server side


def test_broker_side_respond() -> None:
    """A broker-side codec: feed requests, answer through the codec (broker_side.respond)."""
    broker = KafkaCodec()
    client = KafkaCodec()  # a proxy in between sees exactly the same bytes
    req = framing.encode_request(18, 3, 1, "cli", {"client_software_name": "x"})
    (m,) = broker.feed(UPSTREAM, req)
    client.feed(UPSTREAM, req)
    frame = respond(broker, m, {"error_code": 0, "api_keys": [{"api_key": 0, "max_version": 9}]})
    (r,) = client.feed(DOWNSTREAM, frame)
    assert r.view.api_keys[0].max_version == 9
    assert broker.pending == 0 and broker.take_exchanges()[0].operation == "ApiVersions v3"
    # SASL v0 on the broker side: respond() also drives token mode.
    (h,) = broker.feed(UPSTREAM, framing.encode_request(17, 0, 2, "cli", {"mechanism": "PLAIN"}))
    respond(broker, h, {"error_code": 0, "mechanisms": ["PLAIN"]})
    (t,) = broker.feed(UPSTREAM, struct.pack(">i", len(SECRET)) + SECRET)
    assert t.kind == "sasl_token" and unredacted_view(t) == SECRET
    assert respond(broker, t, b"") == b"\x00\x00\x00\x00"
    assert not broker.in_sasl_token_mode


def test_inject_response_while_a_real_response_is_half_read() -> None:
    """A fault answers one request itself; the real stream is not disturbed."""
    codec = KafkaCodec()
    (a, resp_a), (b, _) = metadata_pair(1), metadata_pair(2)
    _, req_b = codec.feed(UPSTREAM, a + b)
    assert codec.feed(DOWNSTREAM, resp_a[:10]) == []
    injected = codec.inject_response(req_b, {"brokers": [], "topics": [], "error_code": 0})
    assert injected.kind == "response" and injected.key == 2
    assert injected.info["status"] == STATUS_OK
    (real,) = codec.feed(DOWNSTREAM, resp_a[10:])
    assert real.raw == resp_a and real.key == 1
    assert codec.pending == 0
    assert [e.key for e in codec.take_exchanges()] == [2, 1]


def test_eof_hands_over_an_incomplete_frame() -> None:
    codec = KafkaCodec()
    req, _ = metadata_pair(1)
    assert codec.feed(UPSTREAM, req[:7]) == []
    (m,) = codec.eof(UPSTREAM)
    assert m.kind == "partial" and m.raw == req[:7] and m.info == {"truncated": True}
    assert codec.eof(UPSTREAM) == [] and codec.eof(DOWNSTREAM) == []


def test_plain_int_directions_work() -> None:
    codec = KafkaCodec()
    req, resp = metadata_pair(3)
    assert codec.feed(0, req)[0].kind == "request"
    assert codec.feed(1, resp)[0].kind == "response"


@given(st.data())
def test_sasl_raw_token_conversation_under_any_chunking(data: st.DataObject) -> None:
    mech = data.draw(st.sampled_from(["PLAIN", "SCRAM-SHA-512", "GSSAPI"]))
    rounds = {"PLAIN": 1, "SCRAM-SHA-512": 2, "GSSAPI": 3}[mech]
    token = struct.pack(">i", len(SECRET)) + SECRET
    steps = [
        (UPSTREAM, framing.encode_request(17, 0, 1, "app", {"mechanism": mech})),
        (DOWNSTREAM, framing.encode_response(17, 0, 1, {"mechanisms": [mech]})),
    ]
    for _ in range(rounds):
        steps += [(UPSTREAM, token), (DOWNSTREAM, struct.pack(">i", 2) + b"ok")]
    req, resp = metadata_pair(2)
    steps += [(UPSTREAM, req), (DOWNSTREAM, resp)]
    codec = KafkaCodec()
    kinds = []
    for direction, frame in steps:
        for piece in data.draw(chunks(frame)):
            kinds += [m.kind for m in codec.feed(direction, piece)]
    assert kinds == ["request", "response"] + ["sasl_token"] * (2 * rounds) + [
        "request",
        "response",
    ]
    assert not codec.in_sasl_token_mode
    ops = [e.operation for e in codec.take_exchanges()]
    assert ops == ["SaslHandshake v0"] + ["SaslToken"] * rounds + ["Metadata v12"]


@pytest.mark.parametrize("version", [2, 3, 9])
def test_undecodable_acks_zero_produce_is_not_left_pending(version: int) -> None:
    codec = KafkaCodec()
    frame = produce_request(1, {"t": {0: record_batch(1)}}, acks=0, version=version)
    cut = struct.pack(">i", len(frame) - 4 - 5) + frame[4:-5]
    (m,) = codec.feed(UPSTREAM, cut)
    assert "decode_error" in m.info and not m.info["expects_response"]
    assert codec.pending == 0
