"""What the capture hands the writer: one finished call, request or Produce.

The capture (on the data path) only copies bytes and headers into these; all
decoding (protobuf to JSON, de-chunking, Kafka record batches) happens in the
writer, off the data path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Headers = list[tuple[str, str]]


@dataclass(slots=True)
class GrpcCall:
    """One gRPC call as seen on the wire, messages decompressed later by the writer."""

    path: str  # "/pkg.Svc/Method"
    request_headers: Headers
    response_headers: Headers = field(default_factory=list)
    trailers: Headers = field(default_factory=list)
    #: (compressed flag, payload) per message, in order
    requests: list[tuple[int, bytes]] = field(default_factory=list)
    responses: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def service(self) -> str:
        return self.path.strip("/").split("/", 1)[0]

    @property
    def method(self) -> str:
        parts = self.path.strip("/").split("/", 1)
        return parts[1] if len(parts) == 2 else ""


@dataclass(slots=True)
class HttpExchange:
    """One HTTP/1.1 or plain HTTP/2 request and its final response."""

    method: str
    url: str
    request_headers: Headers
    request_body: bytes
    status: int
    response_headers: Headers
    response_body: bytes


@dataclass(slots=True)
class ProduceRequest:
    """One Produce request's raw bytes; the writer decodes its record batches."""

    raw: bytes
    api_version: int
    body_at: int


Recording = GrpcCall | HttpExchange | ProduceRequest
