"""One gRPC call seen from the middle: its messages, its status, its Exchange.

Fed by the HTTP/2 codec for streams whose request content-type starts with
application/grpc. Pure bookkeeping on decoded headers and DATA payloads.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..base import DecodeError, Direction, Exchange
from .framing import Budget, GrpcMessage, MessageReader
from .status import decode_message, http_status, parse_status, rst_status
from .timeout import parse_timeout

Headers = Sequence[tuple[str, str]]


def is_grpc(content_type: str | None) -> bool:
    return content_type is not None and content_type.startswith("application/grpc")


def split_path(path: str) -> tuple[str, str]:
    """("/pkg.Svc/Method") -> ("pkg.Svc", "Method"); a malformed path gives ("", path)."""
    service, sep, method = path[1:].partition("/")
    if not path.startswith("/") or not sep:
        return "", path
    return service, method


class GrpcCall:
    __slots__ = (
        "_budget",
        "_max_size",
        "ex",
        "grpc_message",
        "http_status",
        "malformed",
        "path",
        "readers",
        "request_headers",
        "status",
        "stream_id",
    )

    protocol = "grpc"

    def __init__(
        self,
        stream_id: int,
        path: str,
        headers: Headers,
        started: int,
        max_message_size: int,
        budget: Budget | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.path = path
        #: stamped as the call's frames pass; completed by `exchange`
        self.ex = Exchange.begin("grpc", path, stream_id, started)
        # Kept, not scanned: encoding and timeout are only needed for the Exchange.
        self.request_headers = headers
        self._max_size = max_message_size
        self._budget = budget
        # Made on first DATA: many calls carry messages one way only.
        self.readers: list[MessageReader | _Discard | None] = [None, None]
        self.http_status: str | None = None
        self.status: str | None = None
        self.grpc_message: str | None = None
        #: Why a direction's messages stopped being read (a bad length prefix),
        #: or None. A bad payload inside good HTTP/2 framing ends only this
        #: call's accounting, never the connection: the bytes are still relayed.
        self.malformed: str | None = None

    def on_data(self, direction: Direction, payload: memoryview) -> list[GrpcMessage]:
        reader = self.readers[direction]
        if reader is None:
            reader = MessageReader(direction, self.stream_id, self._max_size, self._budget)
            self.readers[direction] = reader
        try:
            return reader.feed(payload)
        except DecodeError as exc:
            # Not a connection error: only this call's messages are unreadable.
            reader.release()
            self.readers[direction] = _Discard(reader)
            if self.malformed is None:
                self.malformed = f"{direction.name.lower()}: {exc}"
            return []

    @property
    def encoding(self) -> str | None:
        return self._request_header("grpc-encoding")

    @property
    def timeout(self) -> float | None:
        value = self._request_header("grpc-timeout")
        return None if value is None else parse_timeout(value)

    def _request_header(self, wanted: str) -> str | None:
        for name, value in self.request_headers:
            if name == wanted:
                return value
        return None

    def on_response_headers(self, headers: Headers) -> bool:
        """Response headers, trailers, or a trailers-only response.

        True when this is a final response head whose content-type is not
        gRPC: the server answered with plain HTTP (a file, an error page), so
        its body is not length-prefixed messages and must not be read as such.
        """
        final = False
        grpc_type = False
        for name, value in headers:
            if name == "grpc-status":
                self.status = parse_status(value)
            elif name == "grpc-message":
                self.grpc_message = decode_message(value)
            elif name == ":status":
                self.http_status = value
                final = value[:1] != "1"
            elif name == "content-type":
                grpc_type = is_grpc(value)
        return final and not grpc_type

    def on_rst(self, error_code: int) -> None:
        if self.status is None:
            self.status = rst_status(error_code)

    def on_abort(self) -> None:
        """The connection ended first: clients see UNAVAILABLE."""
        if self.status is None:
            self.status = "UNAVAILABLE"

    def exchange(self, request_bytes: int, response_bytes: int) -> Exchange:
        """The call's Exchange; the call is over, so partial messages are let go."""
        req, resp = self.readers
        if req is not None:
            req.release()
        if resp is not None:
            resp.release()
        status = self.status
        if status is None:
            status = http_status(self.http_status)
        service, method = _split_cached(self.path)
        # One pass for both request headers the Exchange reports; the first of
        # each wins, as in `encoding`/`timeout`.
        encoding = timeout = None
        for name, value in self.request_headers:
            if name in _EXCHANGE_HEADERS:  # one hashed lookup per header
                if name == "grpc-timeout":
                    if timeout is None:
                        timeout = value
                elif encoding is None:
                    encoding = value
        attrs = {
            "service": service,
            "method": method,
            "request_messages": req.count if req else 0,
            "response_messages": resp.count if resp else 0,
            "request_message_bytes": req.bytes if req else 0,
            "response_message_bytes": resp.bytes if resp else 0,
            "grpc_encoding": encoding,
            "timeout": None if timeout is None else _timeout_cached(timeout),
            "http_status": self.http_status,
        }
        if self.grpc_message is not None:
            attrs["grpc_message"] = self.grpc_message
        if self.malformed is not None:
            attrs["grpc_malformed"] = self.malformed
            if self.status is None:
                status = "malformed"
        ex = self.ex
        ex.status = status
        ex.request_bytes = request_bytes
        ex.response_bytes = response_bytes
        ex.attrs = attrs
        return ex


class _Discard:
    """Stands in for a direction's reader once its messages turned out malformed:
    keeps what was counted, reads nothing more."""

    __slots__ = ("bytes", "count")

    def __init__(self, reader: MessageReader) -> None:
        self.count = reader.count
        self.bytes = reader.bytes

    def feed(self, payload: memoryview) -> list[GrpcMessage]:
        return []

    def release(self) -> None:
        pass


# Paths and grpc-timeout values repeat call after call (one client's deadline
# setting, a service's few methods): parse each once. Bounded, cleared when full.
_CACHE_MAX = 1024
_EXCHANGE_HEADERS = frozenset(("grpc-timeout", "grpc-encoding"))
_SPLITS: dict[str, tuple[str, str]] = {}
_TIMEOUTS: dict[str, float | None] = {}


def _split_cached(path: str) -> tuple[str, str]:
    hit = _SPLITS.get(path)
    if hit is None:
        hit = split_path(path)
        if len(_SPLITS) >= _CACHE_MAX:
            _SPLITS.clear()
        _SPLITS[path] = hit
    return hit


def _timeout_cached(value: str) -> float | None:
    try:
        return _TIMEOUTS[value]
    except KeyError:
        pass
    seconds = parse_timeout(value)
    if len(_TIMEOUTS) >= _CACHE_MAX:
        _TIMEOUTS.clear()
    _TIMEOUTS[value] = seconds
    return seconds
