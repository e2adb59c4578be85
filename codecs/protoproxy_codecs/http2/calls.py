"""Plain HTTP/2 requests as Exchanges (the gRPC ones live in ..grpc)."""

from __future__ import annotations

from collections.abc import Sequence

from ..base import Exchange

Headers = Sequence[tuple[str, str]]


class HttpCall:
    """Request head fields plus the final response status; same shape as GrpcCall."""

    __slots__ = ("authority", "ex", "method", "path", "status", "stream_id")

    protocol = "http2"

    def __init__(
        self, stream_id: int, method: str, path: str, authority: str, started: int
    ) -> None:
        self.stream_id = stream_id
        self.method = method
        self.path = path
        self.authority = authority
        #: stamped as the call's frames pass; completed by `exchange`
        self.ex = Exchange.begin("http2", f"{method} {path}", stream_id, started)
        self.status: str | None = None

    def on_response_headers(self, headers: Headers) -> None:
        for name, value in headers:
            if name == ":status":
                # 1xx heads are interim; the final status wins.
                if self.status is None or self.status.startswith("1"):
                    self.status = value
                return

    def on_rst(self, error_code: int) -> None:
        if self.status is None:
            self.status = "reset"

    def on_abort(self) -> None:
        if self.status is None:
            self.status = "aborted"

    def exchange(self, request_bytes: int, response_bytes: int) -> Exchange:
        ex = self.ex
        ex.status = self.status or "none"
        ex.request_bytes = request_bytes
        ex.response_bytes = response_bytes
        ex.attrs = {"authority": self.authority}
        return ex
