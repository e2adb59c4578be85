"""Plain HTTP/2 requests as Exchanges (the gRPC ones live in ..grpc)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..base import Exchange

if TYPE_CHECKING:
    from ..grpc.call import GrpcCall

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

    @classmethod
    def from_grpc(cls, call: GrpcCall) -> HttpCall:
        """A gRPC-shaped request the server answered with plain HTTP.

        The call's Exchange (with its stamps so far) is kept and relabelled, so
        it is reported once, as the HTTP/2 exchange it turned out to be.
        """
        method = authority = ""
        for name, value in call.request_headers:
            if name == ":method":
                method = value
            elif name == ":authority":
                authority = value
        self = cls.__new__(cls)
        self.stream_id = call.stream_id
        self.method = method
        self.path = call.path
        self.authority = authority
        self.ex = ex = call.ex
        ex.protocol = "http2"
        ex.operation = f"{method} {call.path}"
        self.status = None
        for reader in call.readers:
            if reader is not None:
                reader.release()  # a partial request message gives its budget back
        return self

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
