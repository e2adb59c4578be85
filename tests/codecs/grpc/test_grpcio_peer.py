"""The codec between grpcio's C-core client and server: real framing, HPACK,
flow control and statuses, relayed over loopback sockets byte for byte."""

from __future__ import annotations

import selectors
import socket
import threading
from collections.abc import Iterator

import grpc
import pytest

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, DecodeError, Direction, Exchange, Message
from protoproxy_codecs.http2 import Http2Codec


class Relay:
    """A one-connection TCP relay that passes every byte through an Http2Codec."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.codec = Http2Codec()
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.messages: list[Message] = []
        self.exchanges: list[Exchange] = []
        self.error: DecodeError | None = None
        self.relayed = [0, 0]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        client, _ = self.listener.accept()
        server = socket.create_connection(self.upstream)
        peers = {client: (server, UPSTREAM), server: (client, DOWNSTREAM)}
        sel = selectors.DefaultSelector()
        for sock in peers:
            sel.register(sock, selectors.EVENT_READ)
        open_ = 2
        while open_:
            for key, _ in sel.select():
                src = key.fileobj
                dst, direction = peers[src]  # type: ignore[index]
                data = src.recv(65536)  # type: ignore[union-attr]
                if not data:
                    sel.unregister(src)
                    open_ -= 1
                    self.codec.eof(direction)
                    dst.shutdown(socket.SHUT_WR)
                    continue
                self._relay(direction, data, dst)
        self.exchanges += self.codec.take_exchanges()
        client.close()
        server.close()

    def _relay(self, direction: Direction, data: bytes, dst: socket.socket) -> None:
        try:
            msgs = self.codec.feed(direction, data)
        except DecodeError as exc:
            self.error = exc
            raise
        self.messages += msgs
        for m in msgs:
            dst.sendall(m.raw)
            self.relayed[direction] += len(m.raw)
        self.exchanges += self.codec.take_exchanges()

    def join(self) -> None:
        self._thread.join(timeout=30)
        self.listener.close()


def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    if request == b"fail":
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing: \u2713")
    return request[::-1]


def _stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    for i in range(int(request)):
        yield bytes([i % 256]) * (i * 1000)


def _total(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
    return str(sum(len(r) for r in requests)).encode()


@pytest.fixture()
def grpc_server() -> Iterator[int]:
    from concurrent import futures

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.method_handlers_generic_handler(
        "demo.Echo",
        {
            "Say": grpc.unary_unary_rpc_method_handler(_echo),
            "Many": grpc.unary_stream_rpc_method_handler(_stream),
            "Total": grpc.stream_unary_rpc_method_handler(_total),
        },
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(None)


def test_grpcio_calls_through_the_codec(grpc_server: int) -> None:
    relay = Relay(("127.0.0.1", grpc_server))
    with grpc.insecure_channel(f"127.0.0.1:{relay.port}") as channel:
        say = channel.unary_unary("/demo.Echo/Say")
        many = channel.unary_stream("/demo.Echo/Many")
        for i in range(50):
            request = f"hello {i}".encode() * (i + 1)
            assert say(request, timeout=10) == request[::-1]
        with pytest.raises(grpc.RpcError) as info:
            say(b"fail", timeout=10)
        assert info.value.code() is grpc.StatusCode.NOT_FOUND
        chunks = list(many(b"120", timeout=10))  # ~7 MB: flow control and many DATA frames
        assert len(chunks) == 120
        total = channel.stream_unary("/demo.Echo/Total")
        big = [bytes([i]) * 300_000 for i in range(5)]  # each spans many frames upstream
        assert total(iter(big), timeout=10) == b"1500000"
    relay.join()
    assert relay.error is None
    ex = relay.exchanges
    assert len(ex) == 53
    assert all(e.protocol == "grpc" for e in ex)
    assert [e.status for e in ex[:50]] == ["OK"] * 50
    assert ex[0].operation == "/demo.Echo/Say" and ex[0].attrs["timeout"] is not None
    assert ex[49].attrs["request_message_bytes"] == len(b"hello 49") * 50
    assert ex[49].attrs["response_messages"] == 1
    assert ex[50].status == "NOT_FOUND" and ex[50].attrs["grpc_message"] == "no such thing: \u2713"
    assert ex[51].attrs["response_messages"] == 120
    assert ex[51].attrs["response_message_bytes"] == sum(i * 1000 for i in range(120))
    assert ex[52].attrs["request_messages"] == 5
    assert ex[52].attrs["request_message_bytes"] == 1_500_000
    up_events = [
        e
        for m in relay.messages
        if m.direction is UPSTREAM and m.key == ex[52].key
        for e in (m.info or {}).get("grpc_messages", [])
    ]
    assert [bytes(e.payload) for e in up_events] == big
    assert relay.relayed[UPSTREAM] > 1_500_000 and relay.relayed[DOWNSTREAM] > 7_000_000
    hits = relay.codec.header_decoder(DOWNSTREAM).hits
    assert hits > 40  # C-core's repeated response heads and trailers are cache hits
