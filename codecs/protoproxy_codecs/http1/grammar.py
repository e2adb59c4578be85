"""HTTP/1.1 wire grammar (RFC 9112), written to accept exactly what h11 accepts.

The proxy and the fake service must agree with h11 about what is valid, or a
client that h11 rejects would sail through the proxy (and the other way round).
The differential test in tests/codecs/http1 holds the two together. Patterns are
compiled once here so that the per-message path only runs C-level regex code.
"""

from __future__ import annotations

import re

# RFC 9110 §5.6.2 token.
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
# h11 lets control bytes other than NUL and whitespace through in values
# (real cookies carry them), but never NUL, CR or LF: that is what keeps
# header injection out.
_VCHAR_OBS = rb"[^\x00\s]"
_FIELD_VALUE = rb"(?:" + _VCHAR_OBS + rb"+(?:[ \t]+" + _VCHAR_OBS + rb"+)*)?"
_HEADER_LINE = rb"(" + _TOKEN + rb"):[ \t]*(" + _FIELD_VALUE + rb")[ \t]*\r?\n"

#: One header line including its line end; groups: name, value.
HEADER_LINE = re.compile(_HEADER_LINE)
#: A whole header block (every line valid, then the blank line). Validating the
#: block in one C call and then `findall` is ~3x cheaper than a Python loop.
HEADER_BLOCK = re.compile(rb"(?:" + _HEADER_LINE + rb")*\r?\n")
#: A header line without its line end (obs-fold slow path).
HEADER_FIELD = re.compile(rb"(" + _TOKEN + rb"):[ \t]*(" + _FIELD_VALUE + rb")[ \t]*")

REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/([0-9]\.[0-9])\r?\n")
STATUS_LINE = re.compile(
    rb"HTTP/([0-9]\.[0-9]) ([0-9]{3})(?: ((?:[ \t]|" + _VCHAR_OBS + rb")*))?\r?\n"
)
#: End of a head: h11 accepts LF or CRLF line ends, so "\n\r?\n" ends a head.
HEAD_END = re.compile(rb"\n\r?\n")
CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;[^\n]*)?[ \t]*\r\n")
#: A chunk-size line of size zero (the last chunk), up to its first byte after the digits.
LAST_CHUNK = re.compile(rb"0+[;\t \r]")
CONTENT_LENGTH = re.compile(rb"[0-9]+")
CONTENT_LENGTH_MAX_DIGITS = 20

#: Methods the sniffer recognises. PRI is deliberately absent: "PRI * HTTP/2.0"
#: is the HTTP/2 preface and belongs to the http2 codec.
METHODS: tuple[bytes, ...] = (
    b"GET",
    b"POST",
    b"PUT",
    b"DELETE",
    b"HEAD",
    b"OPTIONS",
    b"PATCH",
    b"CONNECT",
    b"TRACE",
)

#: Header values that carry credentials; they never leave the codec in clear.
REDACTED_NAMES: frozenset[bytes] = frozenset(
    {b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"}
)
REDACTED = b"<redacted>"
