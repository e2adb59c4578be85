"""A tiny Kafka responder with a planted bug: the subject of `protoproxy fuzz kafka`'s tests.

It advertises ApiVersions, Metadata, Produce and ListOffsets at a few versions
and answers each request with the schema's default response (every error code
0; ApiVersions lists what it advertises; acks=0 Produce gets nothing). The
planted bug, unless `fixed`: a Metadata request naming more than two topics
closes the connection without an answer. Its minimal case is therefore one
Metadata request at the lowest advertised version naming three empty topics.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from typing import Any

from protoproxy.fuzz.driver import Target
from protoproxy_codecs.kafka import framing
from protoproxy_codecs.kafka.api_keys import ApiKey

#: api_key -> (min, max) advertised: ApiVersions v3 and Metadata v9+ are flexible
ADVERTISED: dict[int, tuple[int, int]] = {
    ApiKey.PRODUCE: (3, 5),
    ApiKey.LIST_OFFSETS: (1, 3),
    ApiKey.METADATA: (1, 9),
    ApiKey.API_VERSIONS: (0, 3),
}
MAX_TOPICS = 2

_SIZE = struct.Struct(">i")


def _read_exact(sock: socket.socket, n: int) -> bytes | None:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            return None
        out += chunk
    return bytes(out)


class _Handler(socketserver.BaseRequestHandler):
    server: PlantedKafka

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            head = _read_exact(sock, 4)
            if head is None:
                return
            frame = _read_exact(sock, _SIZE.unpack(head)[0])
            if frame is None:
                return
            header, body = framing.decode_request(frame)
            with self.server.lock:
                self.server.requests += 1
            answer = self.server.answer(header.api_key, header.api_version, body)
            if answer is _CLOSE:
                return  # the planted bug: no answer, no reason
            if answer is not None:
                key, version = header.api_key, header.api_version
                sock.sendall(framing.encode_response(key, version, header.correlation_id, answer))


_CLOSE = object()


class PlantedKafka(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, fixed: bool = False, server_error: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fixed = fixed
        #: answer every Metadata with a topic in UNKNOWN_SERVER_ERROR (-1)
        self.server_error = server_error
        self.requests = 0
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def answer(self, api_key: int, version: int, body: Any) -> Any:
        """The response body (a dict of fields), None for no response, or _CLOSE."""
        if api_key == ApiKey.API_VERSIONS:
            keys = [
                {"api_key": k, "min_version": lo, "max_version": hi}
                for k, (lo, hi) in ADVERTISED.items()
            ]
            return {"error_code": 0, "api_keys": keys}
        if api_key == ApiKey.PRODUCE and body.acks == 0:
            return None
        if api_key == ApiKey.METADATA and self.server_error:
            return {"topics": [{"error_code": -1, "name": "t", "partitions": []}]}
        named = body.topics if api_key == ApiKey.METADATA else None
        if not self.fixed and named is not None and len(named) > MAX_TOPICS:
            return _CLOSE
        return {}

    @property
    def target(self) -> Target:
        return Target("127.0.0.1", self.server_address[1])

    def __enter__(self) -> PlantedKafka:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
