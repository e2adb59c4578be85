"""Connection lifecycle playbooks: events in, commands out, no sockets.

Each test drives one real Connection (real Sides, codecs, filters, metrics)
through `tests.runtime.playbook.Playbook` and checks the commands the
lifecycle table answered with and what reached each wire.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import pytest

from protoproxy.connection_state import (
    ChooseCodec,
    Close,
    Connect,
    Connected,
    Finish,
    FlushPending,
    ForwardEof,
    StartTls,
)
from protoproxy_codecs.base import Direction
from protoproxy_codecs.http2 import frames as F
from tests.runtime.conftest import client_context
from tests.runtime.playbook import Playbook

UPSTREAM, DOWNSTREAM = Direction.UPSTREAM, Direction.DOWNSTREAM
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
H2_SETTINGS = F.frame_header(0, F.SETTINGS, 0, 0)
GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def client_hello(sni: str) -> bytes:
    """A real ClientHello, as OpenSSL writes it."""
    ctx = ssl.create_default_context()
    tls = ctx.wrap_bio(ssl.MemoryBIO(), out := ssl.MemoryBIO(), server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return out.read()


@pytest.mark.parametrize(
    ("first", "protocol"),
    [(H2_PREFACE + H2_SETTINGS, "http2"), (GET, "http"), (b"\x00" * 9, "tcp")],
)
async def test_sniffing_picks_the_codec_from_the_first_bytes(first: bytes, protocol: str) -> None:
    pb = Playbook({"protocol": "auto"})
    assert pb.accept() == [Connect()]  # the connect does not wait for the sniff
    assert pb.conn.state == "sniff"
    assert pb.client_sends(first[:3]) == []  # not enough to tell
    assert pb.client_sends(first[3:]) == [ChooseCodec(protocol)]
    assert pb.conn.protocol == protocol and pb.conn.state == "connecting"
    assert pb.server_wire.data == b""
    commands = pb.upstream_ready()
    assert commands[:2] == [Connected(), FlushPending()]
    assert pb.conn.state == "open"
    assert bytes(pb.server_wire.data) == first


async def test_eof_before_enough_bytes_to_sniff_means_tcp() -> None:
    pb = Playbook({"protocol": "auto"})
    pb.accept()
    assert pb.client_sends(b"PRI") == []
    assert pb.client_eof() == [ChooseCodec("tcp")]  # the EOF waits for the upstream
    assert pb.upstream_ready()[-1] == ForwardEof(UPSTREAM)
    assert bytes(pb.server_wire.data) == b"PRI" and pb.server_wire.eof


async def test_sniffing_after_the_upstream_opens_the_path_at_once() -> None:
    pb = Playbook({"protocol": "auto"})
    pb.accept()
    assert pb.upstream_ready() == [Connected()]
    assert pb.conn.state == "sniff"  # as the admin API has always shown it
    assert pb.client_sends(GET) == [ChooseCodec("http"), FlushPending()]
    assert pb.conn.state == "open"
    assert bytes(pb.server_wire.data) == GET


async def test_server_speaking_first_means_tcp() -> None:
    pb = Playbook({"protocol": "auto"})
    pb.accept()
    pb.upstream_ready()
    assert pb.server_sends(b"220 hello\r\n") == [ChooseCodec("tcp"), FlushPending()]
    assert bytes(pb.client_wire.data) == b"220 hello\r\n"


async def test_tls_passthrough_routes_by_sni_and_relays_the_hello() -> None:
    hello = client_hello("a.example")
    pb = Playbook({"protocol": "tcp", "tls": {"mode": "passthrough"}})
    assert pb.accept() == []  # the ClientHello decides
    assert pb.conn.state == "hello"
    assert pb.client_sends(hello[:20]) == []
    assert pb.client_sends(hello[20:]) == [ChooseCodec("tcp"), Connect()]
    assert pb.conn.sni == "a.example" and pb.conn.passthrough
    assert pb.upstream_ready()[:2] == [Connected(), FlushPending()]
    assert bytes(pb.server_wire.data) == hello  # TLS bytes untouched
    pb.server_sends(b"\x16\x03\x03server-hello")
    assert bytes(pb.client_wire.data) == b"\x16\x03\x03server-hello"


async def test_client_eof_in_the_hello_ends_early() -> None:
    pb = Playbook({"protocol": "tcp", "tls": {"mode": "passthrough"}})
    pb.accept()
    pb.client_sends(b"\x16\x03\x01")
    [close] = pb.client_eof()
    assert close == Close(
        "client_closed_early", "client closed before the TLS handshake", False, True
    )
    assert pb.client_wire.aborted


async def test_early_eof_is_passed_on_after_the_connect() -> None:
    pb = Playbook({"protocol": "tcp"})
    assert pb.accept() == [ChooseCodec("tcp"), Connect()]
    assert pb.client_sends(b"request") == []
    assert pb.client_eof() == []  # no upstream yet: the EOF waits
    assert pb.conn.machine.early_eof and not pb.server_wire.eof
    commands = pb.upstream_ready()
    assert commands[0] == Connected()
    assert commands[-1] == ForwardEof(UPSTREAM)
    assert bytes(pb.server_wire.data) == b"request" and pb.server_wire.eof
    assert not pb.client_wire.eof  # the other direction still flows


async def test_half_close_each_direction_on_its_own_then_close_when_both() -> None:
    pb = Playbook({"protocol": "tcp"})
    pb.accept()
    pb.upstream_ready()
    pb.client_sends(b"up")
    assert pb.client_eof() == [FlushPending(), ForwardEof(UPSTREAM)]
    assert pb.server_wire.eof and not pb.client_wire.eof
    assert pb.client_eof() == []  # a second EOF is nothing
    pb.server_sends(b"down after the client's FIN")
    assert bytes(pb.client_wire.data) == b"down after the client's FIN"
    assert not pb.client_wire.closing
    assert pb.server_eof() == [ForwardEof(DOWNSTREAM), Close("done")]
    assert pb.client_wire.eof
    assert pb.client_wire.closing and not pb.client_wire.aborted  # flushed, not reset
    assert pb.conn.state == "closed" and pb.conn.id in pb.proxy.connections
    assert pb.sockets_gone() == [Finish()]
    assert pb.conn.state == "finished" and pb.conn.id not in pb.proxy.connections
    assert pb.proxy.metrics.connection_errors.get(("l", "done")) == 0


async def test_idle_timeout_aborts_and_counts() -> None:
    pb = Playbook({"protocol": "tcp"})
    pb.accept()
    pb.upstream_ready()
    pb.conn.fail("idle_timeout", "no traffic for 300s")  # what the proxy's idle sweep calls
    assert pb.take() == [Close("idle_timeout", "no traffic for 300s", False, True)]
    assert pb.client_wire.aborted and pb.server_wire.aborted
    assert pb.proxy.metrics.connection_errors.get(("l", "idle_timeout")) == 1
    pb.client_sends(b"late")  # bytes in flight after the end go nowhere
    assert pb.server_wire.data == b""
    assert pb.sockets_gone() == [Finish()]


class Boom:
    """A filter with a bug."""

    def on_messages(self, conn: object, direction: Direction, messages: list) -> list:
        raise RuntimeError("filter bug")


@pytest.mark.parametrize(
    ("protocol", "request_bytes", "reply"),
    [
        ("http", GET, b"HTTP/1.1 500 Internal Server Error\r\n"),
        (
            "http2",
            H2_PREFACE + H2_SETTINGS,
            # the server sent nothing yet: the proxy's own SETTINGS comes first
            F.build_settings() + F.build_goaway(0, F.ErrorCode.INTERNAL_ERROR, b"internal_error"),
        ),
        ("tcp", b"bytes", b""),
    ],
)
async def test_a_crash_ends_the_connection_in_its_protocol_way(
    protocol: str, request_bytes: bytes, reply: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    pb = Playbook({"protocol": protocol})
    pb.accept()
    pb.upstream_ready()
    pb.conn.filters.append(Boom())
    pb.conn.opaque = False
    with caplog.at_level(logging.ERROR, "protoproxy.connection"):
        assert pb.client_sends(request_bytes) == [Close("internal_error")]
        pb.client_sends(request_bytes)  # a second crash is not logged again
    assert bytes(pb.client_wire.data).startswith(reply)
    assert bool(pb.client_wire.data) == bool(reply)
    assert pb.client_wire.closing and not pb.client_wire.aborted  # the reply is flushed
    [record] = [r for r in caplog.records if "internal_error" in r.getMessage()]
    assert record.exc_info is not None and "filter bug" in record.getMessage()
    assert pb.proxy.metrics.connection_errors.get(("l", "internal_error")) == 1
    assert pb.conn.end_reason == "internal_error"
    assert pb.sockets_gone() == [Finish()]


async def test_http1_crash_after_the_response_started_only_closes() -> None:
    pb = Playbook({"protocol": "http"})
    pb.accept()
    pb.upstream_ready()
    pb.client_sends(GET)
    pb.server_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
    pb.conn.filters.append(Boom())
    pb.server_sends(b"rest!!")
    assert bytes(pb.client_wire.data) == b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf"
    assert pb.client_wire.closing


async def test_tls_terminate_sniffs_plaintext_that_came_with_the_handshake(
    certs: dict[str, Path],
) -> None:
    """No ALPN, so the codec is sniffed; the request rides in the Finished's read."""
    pb = Playbook(
        {
            "protocol": "auto",
            "tls": {"cert": str(certs["proxy.test"]), "key": str(certs["proxy.test.key"])},
        }
    )
    pb.accept()
    tls = client_context(certs).wrap_bio(
        inbox := ssl.MemoryBIO(), outbox := ssl.MemoryBIO(), server_hostname="proxy.test"
    )
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    assert pb.client_sends(outbox.read()) == [StartTls()]
    assert pb.conn.state == "tls"
    inbox.write(bytes(pb.client_wire.data))
    pb.client_wire.data.clear()
    tls.do_handshake()  # the client is done; its Finished is in outbox
    tls.write(GET)
    assert pb.client_sends(outbox.read()) == [Connect(), ChooseCodec("http")]
    assert pb.upstream_ready()[:2] == [Connected(), FlushPending()]
    assert bytes(pb.server_wire.data) == GET


async def test_an_eof_to_a_peer_that_already_reset_is_a_reset_not_a_crash() -> None:
    """asyncio's write_eof raises ENOTCONN on a socket the peer reset: the Side
    aborts it (its connection_lost then reports the reset) instead of letting the
    OSError reach the crash boundary as an internal_error."""
    pb = Playbook({"protocol": "tcp"})
    pb.accept()
    pb.upstream_ready()

    def reset() -> None:
        raise OSError(107, "Transport endpoint is not connected")

    pb.server_wire.write_eof = reset  # type: ignore[method-assign]
    pb.client_eof()
    assert pb.server_wire.aborted
    assert pb.proxy.metrics.connection_errors.get(("l", "internal_error")) == 0
