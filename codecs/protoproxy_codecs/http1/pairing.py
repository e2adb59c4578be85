"""What the codec remembers about one request until its response has ended.

Responses carry no id in HTTP/1.1: the n-th response answers the n-th request,
so pairing is a FIFO of these records, bounded by Limits.max_pending.
"""

from __future__ import annotations

from ..base import Exchange


class Pending:
    """One request on the connection, from its head to the end of its response."""

    __slots__ = (
        "connect",
        "ex",
        "h2c",
        "host",
        "method",
        "req_body",
        "req_bytes",
        "req_done",
        "resp_body",
        "resp_bytes",
        "resp_done",
        "seq",
        "status",
        "target",
        "upgrade",
    )

    def __init__(
        self,
        seq: int,
        method: str,
        target: str,
        host: str | None,
        upgrade: list[bytes],
        started: int,
    ) -> None:
        self.seq = seq
        self.method = method
        self.target = target
        self.host = host
        self.upgrade = upgrade
        self.connect = method == "CONNECT"
        #: stamped as the request and response pass; completed by `exchange`
        self.ex = Exchange.begin("http", "", seq, started)
        self.status = 0
        self.req_body = 0
        self.req_bytes = 0
        self.req_done = False
        self.resp_body = 0
        self.resp_bytes = 0
        self.resp_done = False
        #: For an `Upgrade: h2c` request: what the HTTP/2 codec needs to take over.
        self.h2c: tuple[list[tuple[str, str]], bytes | None] | None = None

    @property
    def switches(self) -> bool:
        """The request proposes to leave HTTP/1.1 (Upgrade or CONNECT)."""
        return self.connect or bool(self.upgrade)

    def exchange(self, **extra: object) -> Exchange:
        path = self.target.partition("?")[0]
        status = str(self.status)
        attrs = {
            "method": self.method,
            "path": path,
            "host": self.host,
            "status_class": status[0] + "xx",
            "request_body_bytes": self.req_body,
            "response_body_bytes": self.resp_body,
        }
        if extra:
            attrs.update(extra)
        ex = self.ex
        ex.operation = f"{self.method} {path}"
        ex.status = status
        ex.request_bytes = self.req_bytes
        ex.response_bytes = self.resp_bytes
        ex.attrs = attrs
        return ex
