"""The tap redactors on hand-made streams, cut at every offset: secrets gone, framing kept.

Sans-IO: the redactors are fed bytes and asked for bytes; the frames are
built with the codecs' own encoders (Kafka) and hpack's encoder (HTTP/2),
and decoded back with the same decoders to prove they still parse.
"""

from __future__ import annotations

import pytest
from hpack import Decoder, Encoder
from hypothesis import given
from hypothesis import strategies as st

from protoproxy.capture.hpack_redact import HpackNames, huffman_filler
from protoproxy.capture.redact import LegRedactor, for_protocol
from protoproxy_codecs.kafka import framing
from protoproxy_codecs.kafka.api_keys import ApiKey

SECRET = b"alice-Pa55w0rd-SECRET"


def _run(leg: LegRedactor, script: list[tuple[int, bytes]], cut: int) -> list[bytes]:
    """Feed each (side, bytes) in pieces of `cut` bytes; returns each side's output."""
    out = [bytearray(), bytearray()]
    for side, data in script:
        for at in range(0, len(data), cut):
            out[side] += leg.sides[side].feed(data[at : at + cut])
    for side in (0, 1):
        out[side] += leg.sides[side].close()
    return [bytes(o) for o in out]


def _sasl_authenticate(version: int) -> list[tuple[int, bytes]]:
    auth = b"\0alice\0" + SECRET
    req = framing.encode_request(
        int(ApiKey.SASL_AUTHENTICATE), version, 7, "cid", {"auth_bytes": auth}
    )
    body = {"error_code": 0, "error_message": None, "auth_bytes": b"server-" + SECRET}
    if version >= 1:
        body["session_lifetime_ms"] = 0
    resp = framing.encode_response(int(ApiKey.SASL_AUTHENTICATE), version, 7, body)
    meta = framing.encode_request(int(ApiKey.METADATA), 1, 8, "cid", {"topics": None})
    return [(0, req + meta), (1, resp)]


@pytest.mark.parametrize("version", [0, 1, 2])
@pytest.mark.parametrize("cut", [1, 3, 17, 10_000])
def test_sasl_authenticate_bytes_are_filled(version: int, cut: int) -> None:
    script = _sasl_authenticate(version)
    leg = for_protocol("kafka")
    assert leg is not None
    requests, responses = _run(leg, script, cut)
    assert SECRET not in requests and SECRET not in responses
    assert len(requests) == len(script[0][1]) and len(responses) == len(script[1][1])
    header, body = framing.decode_request(requests[4 : 4 + len(requests)])
    assert header.api_key == int(ApiKey.SASL_AUTHENTICATE) and header.correlation_id == 7
    assert set(body.auth_bytes) == {ord("*")}
    _corr, resp = framing.decode_response(int(ApiKey.SASL_AUTHENTICATE), version, responses[4:])
    assert set(resp.auth_bytes) == {ord("*")} and resp.error_code == 0
    meta = framing.encode_request(int(ApiKey.METADATA), 1, 8, "cid", {"topics": None})
    assert requests.endswith(meta)  # the Metadata request after it is untouched


@pytest.mark.parametrize("cut", [1, 5, 10_000])
def test_handshake_v0_bare_tokens_are_filled(cut: int) -> None:
    hs = framing.encode_request(int(ApiKey.SASL_HANDSHAKE), 0, 1, "cid", {"mechanism": "PLAIN"})
    hs_resp = framing.encode_response(
        int(ApiKey.SASL_HANDSHAKE), 0, 1, {"error_code": 0, "mechanisms": ["PLAIN"]}
    )
    token = b"\0alice\0" + SECRET
    bare = len(token).to_bytes(4, "big") + token
    after = framing.encode_request(int(ApiKey.METADATA), 1, 2, "cid", {"topics": None})
    script = [(0, hs), (1, hs_resp), (0, bare), (1, b"\0\0\0\0"), (0, after)]
    leg = for_protocol("kafka")
    assert leg is not None
    requests, responses = _run(leg, script, cut)
    assert SECRET not in requests
    assert requests == hs + len(token).to_bytes(4, "big") + b"*" * len(token) + after
    assert responses == hs_resp + b"\0\0\0\0"


def test_http1_header_values_filled_across_reads() -> None:
    head = (
        b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + SECRET + b"\r\n"
        b"cookie:a=" + SECRET + b"\r\nX-Other: keep\r\n\r\n"
    )
    for cut in (1, 2, 7, 20, 10_000):
        leg = for_protocol("http")
        assert leg is not None
        out = _run(leg, [(0, head + head)], cut)[0]
        assert SECRET not in out and len(out) == 2 * len(head)
        assert out.count(b"X-Other: keep\r\n") == 2 and out.count(b"Host: x\r\n") == 2
        assert b"Authorization: " + b"*" * (len(SECRET) + 7) + b"\r\n" in out


@pytest.mark.parametrize("huffman", [True, False])
def test_hpack_values_filled_and_tables_stay_in_step(huffman: bool) -> None:
    enc, dec, names = Encoder(), Decoder(), HpackNames()
    enc.huffman = huffman  # type: ignore[attr-defined]
    token = "Bearer " + SECRET.decode() + "+/=~"
    for i in range(4):
        headers = [(":path", f"/svc/M{i}"), ("authorization", token), (f"x-{i}", "v" * 40)]
        block = bytearray(enc.encode(headers, huffman=huffman))
        names.redact(block)
        assert SECRET not in block
        got = dec.decode(bytes(block))
        assert [n for n, _ in got] == [n for n, _ in headers]
        assert got[0] == headers[0] and got[2] == headers[2]  # later indexed fields still right
        assert len(got[1][1]) == len(token) and "SECRET" not in got[1][1]


def test_huffman_filler_keeps_both_lengths() -> None:
    from hpack.huffman_table import decode_huffman

    for encoded, decoded in [(1, 1), (5, 7), (20, 25), (30, 20), (64, 100)]:
        filler = huffman_filler(encoded, decoded)
        assert filler is not None and len(filler) == encoded
        assert len(decode_huffman(filler)) == decoded
    assert huffman_filler(1, 5) is None  # 5 symbols need at least 25 bits


_POOL = [
    (b"server", b"nginx"),
    (b"date", b"Thu, 03 Dec 2026 13:00:00 GMT"),
    (b"date", b"Thu, 03 Dec 2026 13:00:01 GMT"),
    (b"content-type", b"application/grpc"),
    (b"authorization", b"Bearer " + SECRET),
    (b"cookie", b"session=" + SECRET + b"-2"),
    (b"x-long", b"y" * 90),
]


def _hpack_int(value: int, prefix: int, first: int) -> bytes:
    mask = (1 << prefix) - 1
    if value < mask:
        return bytes([first | value])
    out, value = bytearray([first | mask]), value - mask
    while value >= 128:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes([*out, value])


@given(
    st.lists(st.lists(st.sampled_from(range(len(_POOL))), max_size=6), min_size=1, max_size=30),
    st.sampled_from([4096, 200, 120]),
)
def test_repeated_inserting_blocks_through_the_h2_redactor_decode_alike(
    blocks: list[list[int]], table: int
) -> None:
    """HEADERS frames as nginx sends them: every field a literal with
    incremental indexing, the same blocks again and again (so the memo and the
    fixed-point memo of `HpackNames` answer, with evictions at small table
    sizes), through the HTTP/2 leg redactor. Decoded back by hpack, every name
    and every non-secret value is the one sent, and no secret survives."""
    dec = Decoder()
    side = for_protocol("http2").sides[1]  # type: ignore[union-attr]
    for n, picks in enumerate(blocks * 3):  # and twice again: repeats on a warm table
        headers = [_POOL[i] for i in picks]
        block = _hpack_int(table, 5, 0x20) if n == 0 else b""
        block += b"".join(bytes([0x40, len(k)]) + k + bytes([len(v)]) + v for k, v in headers)
        frame = len(block).to_bytes(3, "big") + bytes([1, 0x05]) + (1).to_bytes(4, "big") + block
        out = side.feed(frame)
        assert len(out) == len(frame) and SECRET not in out
        got = dec.decode(out[9:], raw=True)
        assert [k for k, _ in got] == [k for k, _ in headers]
        for (name, value), (_, sent) in zip(got, headers, strict=True):
            if name in (b"authorization", b"cookie"):
                assert len(value) == len(sent)
            else:
                assert value == sent


def test_nginx_like_repeats_reach_the_fixed_point_and_stay_redacted() -> None:
    """Once the table holds only copies of the repeated block, a repeat leaves
    it as it was: the redactor stops walking it (the table version stays) and
    still writes the same redacted bytes."""
    side = for_protocol("http2").sides[1]  # type: ignore[union-attr]
    block = b"".join(bytes([0x40, len(k)]) + k + bytes([len(v)]) + v for k, v in _POOL[:5])
    frame = len(block).to_bytes(3, "big") + bytes([1, 0x05]) + (1).to_bytes(4, "big") + block
    outs = [side.feed(frame) for _ in range(100)]
    assert all(SECRET not in out and len(out) == len(frame) for out in outs)
    assert side.names.fixed  # the fixed point was reached and remembered
    version = side.names.version
    assert side.feed(frame) == outs[-1] and side.names.version == version
