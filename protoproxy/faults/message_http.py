"""HTTP/1.1 message faults: an HTTP status in pipeline order, drops, body corruption.

HTTP/1 pairs responses with requests by order alone, so a request the
server never sees must not leave a gap the next response would fall into.
An `abort` therefore ends the connection's HTTP/1 life at that request:
nothing more goes upstream, the responses still owed for earlier requests
are delivered, then the made-up response (with ``Connection: close``), then
the connection closes. `drop` does the same without the response, so the
client's timeout fires.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, Direction, Message

from .actions import CODEC_MATCH_KEYS, Action
from .handler import Handler, Matcher, flip_bits

if TYPE_CHECKING:
    from .engine import ActiveFault
    from .message_filter import MessageFaultFilter

_REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def status_response(status: int, body: str, seq: int = 0) -> Message:
    """A made-up response (head and body in one `raw`), with the `info` of a head."""
    data = body.encode("utf-8")
    reason = _REASONS.get(status, "Injected")
    headers = [
        (b"Content-Type", b"text/plain; charset=utf-8"),
        (b"Content-Length", b"%d" % len(data)),
        (b"Connection", b"close"),
    ]
    head = f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1")
    head += b"".join(k + b": " + v + b"\r\n" for k, v in headers)
    info = {"status": status, "reason": reason, "version": "1.1", "headers": headers}
    return Message(DOWNSTREAM, "head", head + b"\r\n" + data, seq, info)


class Http1Handler(Handler):
    protocol = "http"
    keys = CODEC_MATCH_KEYS["http"]

    def __init__(self, filt: MessageFaultFilter) -> None:
        super().__init__(filt)
        #: seq of the last request whose response has ended (-1: none yet)
        self.done_seq: int | None = None
        #: from the fault on: nothing more upstream; the reply waits for this seq - 1
        self.stopped_at: int | None = None
        self.reply: Message | None = None
        self.chunked = [False, False]
        #: request/response seq -> the corrupt action for its body
        self.corrupt: dict[tuple[Direction, int], Action] = {}

    def compile(self, fault: ActiveFault, action: Action) -> Matcher | None:
        if super().compile(fault, action) is None:
            return None
        m = fault.spec.match
        method, prefix, host = m.get("method"), m.get("path_prefix"), m.get("host")
        header = m.get("header")
        wanted = (
            {str(k).lower().encode(): v for k, v in header.items()}
            if isinstance(header, dict)
            else ({str(header).lower().encode(): None} if header else {})
        )
        any_head = not (method or prefix or host or wanted)

        def matches(msg: Message) -> bool:
            info = msg.info
            if msg.kind != "head" or info is None:
                return False
            if any_head:
                return True
            if msg.direction is not UPSTREAM:
                return False
            if method is not None and info["method"] != method:
                return False
            if prefix is not None and not info["target"].startswith(prefix):
                return False
            if host is not None and info.get("host") != host:
                return False
            if wanted:
                have = {bytes(k).lower(): bytes(v) for k, v in info["headers"]}
                for name, value in wanted.items():
                    got = have.get(name)
                    if got is None or (value is not None and got != str(value).encode()):
                        return False
            return True

        return matches

    def forward(self, direction: Direction, msg: Message, out: list[Message]) -> None:
        kind = msg.kind
        if kind == "body" and self.corrupt:
            action = self.corrupt.get((direction, msg.key))
            if action is not None and msg.raw and not self.chunked[direction]:
                raw = flip_bits(msg.raw, (0, len(msg.raw)), action, self.filt.rng)
                msg = Message(msg.direction, kind, raw, msg.key, msg.info)
        elif kind == "end" and self.corrupt:
            self.corrupt.pop((direction, msg.key), None)
        if direction is UPSTREAM:
            if self.stopped_at is not None:
                return
            if kind == "head" and self.done_seq is None:
                self.done_seq = msg.key - 1
            out.append(msg)
        else:
            out.append(msg)
            if kind == "end":
                self.done_seq = msg.key
                self._maybe_reply(out)
        if kind == "head" and msg.info is not None:
            self.chunked[direction] = any(
                bytes(k).lower() == b"transfer-encoding" and b"chunked" in bytes(v).lower()
                for k, v in msg.info.get("headers", ())
            )

    def _stop(self, msg: Message, reply: Message | None) -> None:
        self.stopped_at = msg.key
        self.reply = reply
        if self.done_seq is None:
            self.done_seq = msg.key - 1
        self._maybe_reply(None)

    def _maybe_reply(self, out: list[Message] | None) -> None:
        if self.stopped_at is None or self.done_seq is None:
            return
        if self.done_seq < self.stopped_at - 1:
            return  # earlier responses still owed
        conn = self.conn
        if out:
            conn.send(DOWNSTREAM, out)
            out.clear()
        if self.reply is not None:
            self.filt.injected(DOWNSTREAM, [self.reply])
            conn.send_raw(DOWNSTREAM, self.reply.raw)
            self.reply = None
            conn.close("fault_close")

    def drop(self, direction: Direction, msg: Message, out: list[Message], name: str) -> None:
        if direction is UPSTREAM and msg.kind == "head":
            self._stop(msg, None)

    def payload_span(self, msg: Message) -> tuple[int, int] | None:
        if msg.kind != "body" or self.chunked[msg.direction] or not msg.raw:
            return None
        return (0, len(msg.raw))

    def act(
        self, fault: ActiveFault, action: Action, direction: Direction, msg: Message, out: list
    ) -> bool:
        if action.kind == "corrupt" and msg.kind == "head":
            # The head's framing must survive: corrupt the body that follows.
            if len(self.corrupt) < 1024:
                self.corrupt[(direction, msg.key)] = action
            return False
        if action.kind != "abort" or direction is not UPSTREAM or msg.kind != "head":
            return False
        p = action.params
        status = int(p.get("status", p.get("value", 503)))
        body = str(p.get("body", f"injected by protoproxy fault {fault.name}\n"))
        self.filt.flush(direction, out)
        reply = status_response(status, body, msg.key)
        assert reply.info is not None and msg.info is not None
        reply.info["injected"] = msg.info["not_forwarded"] = fault.name
        self._stop(msg, reply)
        return True
