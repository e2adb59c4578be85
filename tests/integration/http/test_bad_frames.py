"""Acceptance 5: garbage and mutated frames end only the offending connection.

HTTP/2: the offender gets GOAWAY with the protocol's own error code
(PROTOCOL_ERROR, FRAME_SIZE_ERROR, COMPRESSION_ERROR) and its reason as debug
data, the connection closes, the error is counted and logged, and a
long-lived gRPC connection through the same listener keeps working.
HTTP/1: a bad request gets a 400 and a close (only the close when the 400
could be taken for the answer to an earlier request, or to this one when its
head was already relayed), a bad response a 502.
Hypothesis mutates valid conversations: whenever the proxy's codec rejects
one, the reply must be exactly that protocol error; otherwise the bytes are
relayed and the peers decide.

These tests are blocking (hypothesis drives plain functions), so the proxy and
the services each run on their own loop in a thread.
"""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protoproxy_codecs.http2 import frames as F
from protoproxy_codecs.http2.hpack_state import encode_context_free
from testbed.grpc import Behaviour
from testbed.grpc.client import SyncClient
from testbed.grpc.threaded import ThreadedGrpcService
from testbed.http import FakeHttpService
from tests.peers import ProxyThread, Script, ScriptedServer, ServiceThread

UNARY = "/protoproxy.testbed.v1.TestService/Unary"


@dataclass
class Env:
    proxy: ProxyThread
    good: SyncClient  # one long-lived gRPC connection through the proxy

    def port(self, name: str) -> int:
        return self.proxy.port(name)

    def decode_errors(self, listener: str, protocol: str) -> dict[str, float]:
        fam = self.proxy.proxy.metrics.decode_errors  # type: ignore[union-attr]
        return self.proxy.run(
            lambda: {k[2]: v for k, v in fam.values.items() if k[:2] == (listener, protocol)}
        )

    def still_good(self) -> None:
        r = self.good.unary(Behaviour.make(size=5), metadata=[("x-still", "good")])
        assert r.ok, r


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    with ThreadedGrpcService() as grpc_svc, ServiceThread(FakeHttpService) as http:
        bad_upstream = ScriptedServer(default=Script(b"HTTP/1.1 2xx Not A Status\r\n\r\n"))
        host, port = http.service.address
        config = {
            "admin": {"enabled": False},
            "limits": {"max_message_size": "1MiB"},
            "listeners": [
                {"name": "h2", "listen": "127.0.0.1:0", "protocol": "grpc", "upstream": "grpc"},
                {"name": "h1", "listen": "127.0.0.1:0", "protocol": "http", "upstream": "http"},
                {"name": "h1bad", "listen": "127.0.0.1:0", "protocol": "http", "upstream": "bad"},
            ],
            "upstreams": [
                {"name": "grpc", "endpoints": [grpc_svc.address]},
                {"name": "http", "endpoints": [f"{host}:{port}"]},
                {"name": "bad", "endpoints": [bad_upstream.address]},
            ],
        }
        with ProxyThread(config) as proxy:
            good = SyncClient.connect(f"127.0.0.1:{proxy.port('h2')}")
            e = Env(proxy, good)
            e.still_good()
            yield e
            good.close()
        bad_upstream.close()


# -- raw HTTP/2 -----------------------------------------------------------------------


def _request_headers(sid: int) -> bytes:
    block = encode_context_free(
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", UNARY),
            (":authority", "bad.test"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
    )
    return F.build_header_block(sid, block, False, F.DEFAULT_MAX_FRAME_SIZE)


def _conversation() -> bytes:
    """A valid client side: preface, SETTINGS, two unary calls."""
    out = bytearray(F.PREFACE + F.build_settings([(F.SettingId.ENABLE_PUSH, 0)]))
    for sid in (1, 3):
        out += _request_headers(sid)
        out += F.build_data(sid, b"\x00\x00\x00\x00\x02\x1a\x00", True, F.DEFAULT_MAX_FRAME_SIZE)
    return bytes(out)


def _exchange(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send `data`, half-close, read until the proxy closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the proxy may already have closed on us; read what it sent
        out = bytearray()
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return bytes(out)


def _frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """Whole frames (type, flags, stream, payload); the proxy never writes half of one."""
    out = []
    pos = 0
    while pos < len(data):
        assert len(data) - pos >= 9, f"partial frame header at {pos}"
        hi, lo, ftype, flags, sid = struct.unpack_from(">HBBBL", data, pos)
        length = (hi << 8) | lo
        end = pos + 9 + length
        assert end <= len(data), f"partial frame at {pos}"
        out.append((ftype, flags, sid & 0x7FFFFFFF, data[pos + 9 : end]))
        pos = end
    return out


def _goaway(received: bytes) -> tuple[int, bytes]:
    """(error code, debug data) of the GOAWAY that ends `received`."""
    frames = _frames(received)
    assert frames, "nothing received"
    ftype, _flags, sid, payload = frames[-1]
    assert ftype == F.GOAWAY and sid == 0, frames[-1]
    _last, code = struct.unpack_from(">LL", payload)
    return code, payload[8:]


_SETUP = F.PREFACE + F.build_settings()

H2_CASES = {
    "data_on_stream_0": (_SETUP + F.frame(F.DATA, 0, 0, b"x"), "protocol_error"),
    "frame_too_large": (
        # past the proxy's max_message_size (1 MiB here), whatever the server allows
        _SETUP + F.frame_header(2_000_000, F.DATA, 0, 1) + bytes(1000),
        "frame_size_error",
    ),
    "short_ping": (_SETUP + F.frame(F.PING, 0, 0, b"1234567"), "frame_size_error"),
    "bad_hpack_index": (
        _SETUP + F.frame(F.HEADERS, F.FLAG_END_HEADERS, 1, b"\xff\xff\xff\x7f"),
        "compression_error",
    ),
    "window_update_zero": (_SETUP + F.build_window_update(0, 1)[:9] + bytes(4), "protocol_error"),
    "client_even_stream": (_SETUP + _request_headers(2), "protocol_error"),
    "bad_preface": (b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + bytes(30), "protocol_error"),
    "settings_first_missing": (F.PREFACE + F.build_ping(), "protocol_error"),
}


@pytest.mark.parametrize("case", sorted(H2_CASES))
def test_h2_garbage_ends_only_that_connection(
    env: Env, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    data, reason = H2_CASES[case]
    before = env.decode_errors("h2", "http2").get(reason, 0)
    with caplog.at_level(logging.WARNING, logger="protoproxy.connection"):
        received = _exchange(env.port("h2"), data)
    code, debug = _goaway(received)
    assert (code, debug) == (F.REASON_CODES[reason], reason.encode())
    assert env.decode_errors("h2", "http2").get(reason, 0) == before + 1
    assert any(
        "decode_error" in r.getMessage() and "listener=h2" in r.getMessage() for r in caplog.records
    )
    env.still_good()


_MUTATION = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.binary(min_size=1, max_size=12)),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.integers(1, 12)),
)


def _mutate(data: bytes, mutations: list[tuple[str, int, Any]]) -> bytes:
    buf = bytearray(data)
    for op, pos, arg in mutations:
        pos %= len(buf) + 1
        if op == "flip" and pos < len(buf):
            buf[pos] ^= arg
        elif op == "insert":
            buf[pos:pos] = arg
        elif op == "delete":
            del buf[pos : pos + arg]
    return bytes(buf)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(_MUTATION, min_size=1, max_size=4))
def test_h2_mutated_conversations(env: Env, mutations: list[tuple[str, int, Any]]) -> None:
    data = _mutate(_conversation(), mutations)
    before = env.decode_errors("h2", "http2")
    received = _exchange(env.port("h2"), data)
    after = env.decode_errors("h2", "http2")
    frames = _frames(received)  # whatever was relayed is whole frames
    if after != before:
        (reason,) = [r for r in after if after[r] != before.get(r, 0)]
        code, debug = _goaway(received)
        assert (code, debug) == (F.REASON_CODES.get(reason, 1), reason.encode())
    else:
        # relayed: anything the server said came through as frames; no GOAWAY of ours
        assert all(f[3][8:] not in (b"protocol_error", b"frame_size_error") for f in frames)


# -- HTTP/1 -----------------------------------------------------------------------------

# request bytes -> whether the client gets a 400 (else only the close)
H1_CASES = {
    "garbage": (b"\x00\x01\x02 garbage\r\n\r\n", True),
    "bad_content_length": (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n", True),
    "smuggling": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        True,
    ),
    # the head was relayed already: the upstream owes this request its answer
    "bad_chunk": (
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        False,
    ),
    "space_in_header_name": (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", True),
}


@pytest.mark.parametrize("case", sorted(H1_CASES))
def test_h1_bad_request_gets_400_and_close(
    env: Env, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    data, gets_400 = H1_CASES[case]
    before = sum(env.decode_errors("h1", "http").values())
    with caplog.at_level(logging.WARNING, logger="protoproxy.connection"):
        received = _exchange(env.port("h1"), data)  # returns once the proxy closed
    if gets_400:
        assert received.startswith(b"HTTP/1.1 400 Bad Request\r\n"), received
        assert b"connection: close" in received.lower()
    else:
        assert received == b""
    assert sum(env.decode_errors("h1", "http").values()) == before + 1
    assert any("listener=h1 " in r.getMessage() for r in caplog.records)
    # the next connection is served normally
    ok = _exchange(env.port("h1"), b"GET /status/201 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 201 ")


def test_h1_bad_response_gets_502(env: Env) -> None:
    received = _exchange(env.port("h1bad"), b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 502 "), received
    assert sum(env.decode_errors("h1bad", "http").values()) == 1


_H1_VALID = (
    b"POST /echo HTTP/1.1\r\nHost: m.test\r\nContent-Length: 5\r\n\r\nhello"
    b"GET /status/204 HTTP/1.1\r\nHost: m.test\r\nConnection: close\r\n\r\n"
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(_MUTATION, min_size=1, max_size=3))
def test_h1_mutated_requests(env: Env, mutations: list[tuple[str, int, Any]]) -> None:
    data = _mutate(_H1_VALID, mutations)
    before = env.decode_errors("h1", "http")
    received = _exchange(env.port("h1"), data)
    after = env.decode_errors("h1", "http")
    if after != before:
        (reason,) = [r for r in after if after[r] != before.get(r, 0)]
        # A 400, if any, comes last, after responses already relayed; otherwise
        # the close alone ends the connection (a 400 would pass for an answer).
        at = received.find(b"HTTP/1.1 400 Bad Request\r\n")
        if at >= 0 and received[at:].endswith(f"bad request: {reason}\n".encode()):
            assert b"connection: close" in received[at:].lower()
        else:
            assert received == b"" or received.startswith(b"HTTP/1.1 ")
    else:
        assert received == b"" or received.startswith(b"HTTP/1.1 ")
