"""Parsing of one request or response head into the facts framing needs.

A head is parsed once, completely, when its blank line arrives: framing needs
Content-Length, Transfer-Encoding, Connection, Upgrade and Expect anyway, so a
lazy parse would only defer the same work. What stays cheap is the common case:
one regex call validates the whole header block and one `findall` splits it.
"""

from __future__ import annotations

from .. import base
from .grammar import (
    CONTENT_LENGTH,
    CONTENT_LENGTH_MAX_DIGITS,
    HEADER_BLOCK,
    HEADER_FIELD,
    HEADER_LINE,
    REDACTED,
    REDACTED_NAMES,
    REQUEST_LINE,
    STATUS_LINE,
)

DecodeError = base.DecodeError

_FRAMING_NAMES = frozenset(
    {b"content-length", b"transfer-encoding", b"connection", b"upgrade", b"expect", b"host"}
)


class Head:
    """A parsed request or response head.

    `headers` keeps the wire order with lower-cased names and is what the
    codec exposes, so credentials are already replaced there; the exact bytes
    live only in the Message's `raw`.
    """

    __slots__ = (
        "chunked",
        "close",
        "content_length",
        "expect_continue",
        "headers",
        "host",
        "method",
        "reason",
        "status",
        "target",
        "upgrade",
        "version",
    )

    def __init__(self) -> None:
        self.method = b""
        self.target = b""
        self.version = b"1.1"
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.host: bytes | None = None
        self.content_length: int | None = None
        self.chunked = False
        self.close = False
        self.upgrade: list[bytes] = []
        self.expect_continue = False


def parse_request(block: bytes, max_headers: int) -> Head:
    """Parse a complete request head (request line through the blank line)."""
    m = REQUEST_LINE.match(block)
    if m is None:
        raise DecodeError(f"illegal request line: {_first_line(block)!r}", "bad_request_line")
    head = Head()
    head.method, head.target, head.version = m.groups()
    hosts = _parse_fields(head, block, m.end(), max_headers)
    if hosts > 1:
        raise DecodeError("multiple Host headers", "bad_host")
    if hosts == 0 and head.version == b"1.1":
        raise DecodeError("HTTP/1.1 request without a Host header", "bad_host")
    if head.chunked and head.content_length is not None:
        # RFC 9112 §6.3: a proxy may only forward this after deleting
        # Content-Length, and a byte-exact proxy cannot; the disagreement
        # between the two is how requests are smuggled.
        raise DecodeError("request with both Content-Length and chunked", "smuggling")
    return head


def parse_response(block: bytes, max_headers: int) -> Head:
    """Parse a complete response head (status line through the blank line)."""
    m = STATUS_LINE.match(block)
    if m is None:
        raise DecodeError(f"illegal status line: {_first_line(block)!r}", "bad_status_line")
    head = Head()
    head.version = m.group(1)
    head.status = int(m.group(2))
    head.reason = m.group(3) or b""
    _parse_fields(head, block, m.end(), max_headers)
    return head


def parse_trailers(block: bytes, max_headers: int) -> list[tuple[bytes, bytes]]:
    """Parse a chunked body's trailer section (field lines through the blank line)."""
    head = Head()
    _parse_fields(head, block, 0, max_headers)
    return head.headers


def _first_line(block: bytes) -> bytes:
    end = block.find(b"\n")
    return block[: 200 if end < 0 else min(end, 200)]


def _parse_fields(head: Head, block: bytes, pos: int, max_headers: int) -> int:
    """Fill `head` from the header lines at block[pos:]; returns the Host count."""
    if HEADER_BLOCK.fullmatch(block, pos) is not None:
        pairs: list[tuple[bytes, bytes]] = HEADER_LINE.findall(block, pos)
    else:
        pairs = _folded_fields(block, pos)
    if len(pairs) > max_headers:
        raise DecodeError(f"more than {max_headers} header fields", "too_many_headers")
    headers = head.headers
    hosts = 0
    seen_length: bytes | None = None
    for name, value in pairs:
        lname = name.lower()
        if lname in _FRAMING_NAMES:
            if lname == b"content-length":
                seen_length = _content_length(value, seen_length)
                head.content_length = int(seen_length)
            elif lname == b"transfer-encoding":
                if head.chunked:
                    raise DecodeError("multiple Transfer-Encoding headers", "bad_transfer_encoding")
                if value.lower() != b"chunked":
                    raise DecodeError(
                        f"unsupported Transfer-Encoding {value[:40]!r}", "bad_transfer_encoding"
                    )
                head.chunked = True
            elif lname == b"host":
                hosts += 1
                head.host = value
            else:
                tokens = _comma_tokens(value)
                if lname == b"connection":
                    if b"close" in tokens:
                        head.close = True
                elif lname == b"upgrade":
                    head.upgrade.extend(tokens)
                elif b"100-continue" in tokens:  # expect
                    head.expect_continue = head.version >= b"1.1"
        elif lname in REDACTED_NAMES:
            value = REDACTED
        headers.append((lname, value))
    if head.version < b"1.1":
        head.close = head.close or b"keep-alive" not in _connection_tokens(headers)
    return hosts


def _content_length(value: bytes, seen: bytes | None) -> bytes:
    if value.isdigit() and len(value) <= CONTENT_LENGTH_MAX_DIGITS and seen is None:
        return value  # the common case, without the list handling below
    # h11's rule: "5, 5" is 5; differing values, in one field or across
    # several, are a smuggling vector and rejected.
    lengths = {part.strip() for part in value.split(b",")}
    if len(lengths) != 1:
        raise DecodeError("conflicting Content-Length values", "bad_content_length")
    length = lengths.pop()
    if CONTENT_LENGTH.fullmatch(length) is None or len(length) > CONTENT_LENGTH_MAX_DIGITS:
        raise DecodeError(f"bad Content-Length {length[:40]!r}", "bad_content_length")
    if seen is not None and seen != length:
        raise DecodeError("conflicting Content-Length headers", "bad_content_length")
    return length


def _comma_tokens(value: bytes) -> list[bytes]:
    return [t for t in (p.strip() for p in value.lower().split(b",")) if t]


def _connection_tokens(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    out: list[bytes] = []
    for name, value in headers:
        if name == b"connection":
            out.extend(_comma_tokens(value))
    return out


def _folded_fields(block: bytes, pos: int) -> list[tuple[bytes, bytes]]:
    """Slow path: header lines with obsolete line folding (RFC 9112 §5.2), or invalid ones.

    A folded line is joined to the previous one with a single space, as h11
    does; anything that still does not match the field grammar is an error.
    """
    lines = block[pos:].split(b"\n")
    # The block ends with the blank line, so the split ends with two empties
    # (or one empty after a lone "\r").
    joined: list[bytes] = []
    for line in lines[:-2]:
        if line.endswith(b"\r"):
            line = line[:-1]
        if line[:1] in (b" ", b"\t"):
            if not joined:
                raise DecodeError("continuation line at start of headers", "bad_header")
            joined[-1] = joined[-1] + b" " + line.lstrip(b" \t")
        else:
            joined.append(line)
    pairs: list[tuple[bytes, bytes]] = []
    for line in joined:
        m = HEADER_FIELD.fullmatch(line)
        if m is None:
            raise DecodeError(f"illegal header line: {line[:80]!r}", "bad_header")
        pairs.append((m.group(1), m.group(2)))
    return pairs
