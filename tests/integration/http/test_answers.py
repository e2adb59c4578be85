"""Answers the proxy must relay as the peers sent them (issue 12).

* A server may reject a request with more metadata than it allows while the
  request's header block is still arriving (grpcio was seen doing so): its
  answer on a stream whose CONTINUATION frames are pending is legal (each
  direction has its own frames) and must reach the client as it does without
  the proxy. grpcio 1.85 here answers only after END_HEADERS, so the early
  answer itself comes from a minimal server that answers at the first HEADERS
  frame; the grpcio test keeps the whole exchange equal to direct.
* A gRPC-shaped POST answered with a plain body (a file, an error page) is an
  HTTP/2 exchange: the body is not read as length-prefixed messages, and the
  connection carries on.
"""

from __future__ import annotations

import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import h2.config
import h2.connection
import h2.events
import hpack
import pytest

from protoproxy_codecs.http2 import PREFACE
from protoproxy_codecs.http2 import frames as F
from tests.peers import ProxyThread
from tests.tools import require_tool

METHOD = "/pkg.Svc/Echo"


def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    return request


class _Generic(grpc.GenericRpcHandler):
    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method == METHOD:
            return grpc.unary_unary_rpc_method_handler(_echo)
        return None


@pytest.fixture(scope="module")
def grpc_port() -> Iterator[int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((_Generic(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(0)


def _config(upstream: int) -> dict[str, object]:
    return {
        "admin": {"enabled": False},
        "listeners": [
            {"name": "h2", "listen": "127.0.0.1:0", "protocol": "http2", "upstream": "up"}
        ],
        "upstreams": [{"name": "up", "endpoints": [f"127.0.0.1:{upstream}"]}],
    }


def _call(port: int, metadata: int) -> tuple[grpc.StatusCode, str, bytes | None]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        echo = channel.unary_unary(METHOD)
        try:
            reply = echo(b"ping", metadata=[("x-big", "v" * metadata)], timeout=10)
        except grpc.RpcError as exc:
            return exc.code(), exc.details() or "", None
        return grpc.StatusCode.OK, "", reply


def _decode_errors(proxy: ProxyThread) -> float:
    return proxy.run(lambda: proxy.app.proxy.metrics.decode_errors.total())  # type: ignore[no-any-return]


def test_grpcio_early_answer_to_oversized_metadata_reaches_the_client(grpc_port: int) -> None:
    direct = _call(grpc_port, 20 * 1024)
    assert direct[0] is not grpc.StatusCode.OK  # grpcio refuses it (the premise)
    with ProxyThread(_config(grpc_port)) as proxy:
        port = proxy.port("h2")
        through = _call(port, 20 * 1024)
        assert through[0] == direct[0], (through, direct)
        assert through[1] == direct[1]
        # the proxy neither failed the connection nor lost the next call
        assert _call(port, 100) == (grpc.StatusCode.OK, "", b"ping")
        assert _decode_errors(proxy) == 0


# -- an answer while the request block is open ----------------------------------------

Frame = tuple[int, int, int, bytes]  # type, flags, stream id, payload


def _frames(buf: bytes) -> tuple[list[Frame], bytes]:
    out: list[Frame] = []
    pos = 0
    while len(buf) - pos >= 9:
        length = int.from_bytes(buf[pos : pos + 3], "big")
        if len(buf) - pos < 9 + length:
            break
        sid = int.from_bytes(buf[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
        out.append((buf[pos + 3], buf[pos + 4], sid, buf[pos + 9 : pos + 9 + length]))
        pos += 9 + length
    return out, buf[pos:]


def _read_for(sock: socket.socket, seconds: float) -> list[Frame]:
    """Frames that arrive within `seconds` (or until EOF)."""
    sock.settimeout(seconds)
    buf = b""
    try:
        while data := sock.recv(65536):
            buf += data
    except TimeoutError:
        pass
    return _frames(buf)[0]


def _early_server(sock: socket.socket) -> None:
    """Answers RESOURCE_EXHAUSTED at the first HEADERS frame that lacks END_HEADERS."""
    enc = hpack.Encoder()
    sock.sendall(F.build_settings())
    buf = sock.recv(len(PREFACE))
    while len(buf) < len(PREFACE):
        buf += sock.recv(len(PREFACE) - len(buf))
    buf = b""
    while data := sock.recv(65536):
        frames, buf = _frames(buf + data)
        for ftype, flags, sid, _ in frames:
            if ftype == F.SETTINGS and not flags & F.FLAG_ACK:
                sock.sendall(F.build_settings(ack=True))
            elif ftype == F.HEADERS and not flags & F.FLAG_END_HEADERS:
                answer = [(":status", "200"), ("content-type", "application/grpc")]
                answer += [("grpc-status", "8"), ("grpc-message", "metadata too large")]
                block = enc.encode(answer)
                sock.sendall(F.build_header_block(sid, block, end_stream=True))
    sock.close()


def _serve(handler: object) -> Iterator[int]:
    listener = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handler, args=(sock,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


@pytest.fixture()
def early_h2() -> Iterator[int]:
    yield from _serve(_early_server)


def _split_request(port: int) -> tuple[list[Frame], list[Frame]]:
    """A 20 KiB-metadata request whose CONTINUATION waits for the answer:
    (frames received before it was sent, frames received after)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(PREFACE + F.build_settings())
    request = [(":method", "POST"), (":scheme", "http"), (":path", METHOD)]
    request += [(":authority", "x"), ("content-type", "application/grpc"), ("te", "trailers")]
    block = hpack.Encoder().encode([*request, ("x-big", "v" * 20 * 1024)], huffman=False)
    sock.sendall(F.frame(F.HEADERS, 0, 1, block[:16000]))
    early = _read_for(sock, 1.0)
    sock.sendall(
        F.frame(F.CONTINUATION, F.FLAG_END_HEADERS, 1, block[16000:])
        + F.build_data(1, b"\0\0\0\0\4ping", end_stream=True)
        + F.build_settings(ack=True)
    )
    late = _read_for(sock, 0.5)
    sock.close()
    return early, late


def _on_streams(frames: list[Frame]) -> list[tuple[int, int, int]]:
    return [(t, fl, sid) for t, fl, sid, _ in frames if sid or t == F.GOAWAY]


def test_answer_while_request_block_is_open_is_relayed(early_h2: int) -> None:
    direct = _split_request(early_h2)
    answered = (F.HEADERS, F.FLAG_END_HEADERS | F.FLAG_END_STREAM, 1)
    assert _on_streams(direct[0]) == [answered]  # the premise: it answers early
    with ProxyThread(_config(early_h2)) as proxy:
        through = _split_request(proxy.port("h2"))
        assert _on_streams(through[0]) == _on_streams(direct[0])
        assert _on_streams(through[1]) == _on_streams(direct[1]) == []  # no GOAWAY
        assert _decode_errors(proxy) == 0

        def finished() -> dict[tuple[str, ...], float]:
            return dict(proxy.app.http.grpc_finished.values)

        (key,) = proxy.run(finished)
        assert "RESOURCE_EXHAUSTED" in key


# -- a plain HTTP/2 server answering gRPC-shaped requests -------------------------------

#: Starts like a 4 GB gRPC message: read as one, it would end the connection.
BODY = b"\xf7\xe1\x02\x03\x11<html>not gRPC</html>" + b"x" * 3000


def _serve_plain(sock: socket.socket) -> None:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    while data := sock.recv(65536):
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                conn.send_headers(
                    event.stream_id,
                    [(":status", "200"), ("content-type", "text/html"), ("server", "plain")],
                )
                conn.send_data(event.stream_id, BODY, end_stream=True)
        sock.sendall(conn.data_to_send())
    sock.close()


@pytest.fixture()
def plain_h2() -> Iterator[int]:
    yield from _serve(_serve_plain)


def test_grpc_shaped_post_with_plain_answer_is_an_http2_exchange(
    plain_h2: int, tmp_path: Path
) -> None:
    h2load = require_tool("h2load")
    body = tmp_path / "request"
    body.write_bytes(b"\0\0\0\0\4ping")
    with ProxyThread(_config(plain_h2)) as proxy:
        out = subprocess.run(
            [
                h2load,
                "-n",
                "10",
                "-c",
                "1",
                "-H",
                "content-type: application/grpc",
                "-d",
                str(body),
                f"http://127.0.0.1:{proxy.port('h2')}{METHOD}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        m = re.search(r"requests: 10 total, 10 started, 10 done, (\d+) succeeded", out)
        assert m and m.group(1) == "10", out

        def counted() -> dict[tuple[str, ...], float]:
            return dict(proxy.app.http.http_requests.values)

        requests = proxy.run(counted)
        assert sum(requests.values()) == 10
        assert all(key[2] == "POST" and key[3] == "2xx" for key in requests), requests
        assert _decode_errors(proxy) == 0
