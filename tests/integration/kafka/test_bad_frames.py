"""Random and mutated frames sent to the proxy end only the offending connection.

The proxy's own codec decides which inputs are framing errors (DecodeError):
each of those must close its connection, count one
``protoproxy_decode_errors_total`` and log one line, while a healthy client
on another connection keeps getting answers. Inputs that frame correctly
(unknown APIs, nonsense bodies) are forwarded, as DESIGN.md requires.
"""

from __future__ import annotations

import logging
import re
import socket
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protoproxy_codecs.base import UPSTREAM, DecodeError
from protoproxy_codecs.kafka import KafkaCodec, framing

from .rig import KafkaRig

# 40 under the default "ci" profile; scales up with HYPOTHESIS_PROFILE=deep.
_EXAMPLES = max(40, settings().max_examples // 10)

GOOD = [
    framing.encode_request(3, 9, 7, "fuzz", {"topics": None}),
    framing.encode_request(18, 3, 8, "fuzz", {}),
    framing.encode_request(10, 3, 9, "fuzz", {"key": "g", "key_type": 0}),
]


@st.composite
def bad_inputs(draw: st.DrawFn) -> bytes:
    base = draw(st.sampled_from(GOOD))
    kind = draw(st.sampled_from(["random", "size", "flip", "truncate", "pair"]))
    if kind == "random":
        return draw(st.binary(min_size=1, max_size=300))
    if kind == "size":
        size = draw(st.integers(-(2**31), 2**31 - 1))
        return struct.pack(">i", size) + base[4:]
    if kind == "flip":
        data = bytearray(base)
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
        return bytes(data)
    if kind == "truncate":
        cut = draw(st.integers(1, len(base) - 1))
        return base[:cut] + draw(st.binary(max_size=40))
    return base + base  # the same correlation id twice, pipelined


def _codec_rejects(data: bytes) -> bool:
    try:
        KafkaCodec().feed(UPSTREAM, data)
    except DecodeError:
        return True
    return False


def _send_and_drain(port: int, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        try:
            while s.recv(65536):
                pass
        except ConnectionResetError:
            pass


class HealthyClient:
    """A raw Kafka client on one long-lived connection through the proxy."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.corr = 1000

    def metadata(self) -> int:
        self.corr += 1
        self.sock.sendall(framing.encode_request(3, 9, self.corr, "healthy", {"topics": []}))
        size = struct.unpack(">i", self._read(4))[0]
        corr, body = framing.decode_response(3, 9, self._read(size))
        assert corr == self.corr
        return len(body.brokers)

    def _read(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("healthy connection closed")
            out += chunk
        return out


def test_bad_frames_end_only_their_connection(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="protoproxy.connection")
    with KafkaRig(brokers=1) as rig:
        port = int(rig.bootstrap.rpartition(":")[2])
        healthy = HealthyClient(port)
        assert healthy.metadata() == 1
        rejected = 0

        @settings(max_examples=_EXAMPLES, suppress_health_check=list(HealthCheck), deadline=None)
        @given(data=bad_inputs())
        def send(data: bytes) -> None:
            nonlocal rejected
            before = _decode_errors(rig)
            _send_and_drain(port, data)
            expected = _codec_rejects(data)
            rejected += expected
            assert _decode_errors(rig) == before + expected
            assert healthy.metadata() == 1  # the other connection carries on

        send()
        healthy.sock.close()
    assert rejected > 0
    # one line per connection, or (past the WARNING rate limit's burst) counted in a
    # "suppressed N similar" summary, written at the latest when the proxy stops
    lines = [r.getMessage() for r in caplog.records if "decode_error" in r.getMessage()]
    ended = [line for line in lines if "ended: decode_error" in line]
    held = [
        int(m.group(1)) for line in lines if (m := re.search(r"suppressed (\d+) similar", line))
    ]
    assert len(ended) + sum(held) == rejected
    assert len(ended) + len(held) == len(lines)


def _decode_errors(rig: KafkaRig) -> int:
    return int(sum(rig.family("protoproxy_decode_errors_total").values()))
