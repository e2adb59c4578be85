"""HTTP/1.1 requests, responses and conversations for hypothesis, and their wire rendering.

Framing is drawn on purpose: Content-Length, chunked (with extensions and
trailers), close-delimited and bodiless responses (HEAD, 204, 304 with a
declared length), interim 1xx answers and Expect: 100-continue.

The renderer is deliberately independent of the codec (plain byte joins), so
the property tests compare the codec with the spec that produced the bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"]
TOKEN = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#", min_size=1, max_size=12
)
VALUE = (
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=0, max_size=20).map(
        str.encode
    )
    | st.just(b"a b\tc")
    | st.just(b"\xe9t\xe9")
)
SECRET_NAMES = ["Authorization", "Cookie", "Proxy-Authorization", "Set-Cookie"]
FRAMING_NAMES = {
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "expect",
    "host",
    "te",
    "trailer",
}


@dataclass
class Req:
    method: str
    target: str
    body: bytes
    framing: str  # "none" | "length" | "chunked"
    chunks: list[int]
    ext: bool
    trailers: list[tuple[bytes, bytes]]
    expect: bool
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    def wire(self) -> bytes:
        """The request as a client sends it: head and framed body."""
        head, body = render_request(self)
        return head + body


@dataclass
class Resp:
    interim: list[int]
    status: int
    body: bytes
    framing: str  # "length" | "chunked" | "close" | "none" (204)
    chunks: list[int]
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    declared: int = 0  # Content-Length declared on a bodiless response
    bodiless: bool = False

    def wire(self) -> bytes:
        """The response as a server sends it, interim responses first."""
        return render_response(self)


def split_sizes(draw: st.DrawFn, n: int) -> list[int]:
    sizes: list[int] = []
    while n > 0:
        k = draw(st.integers(1, n))
        sizes.append(k)
        n -= k
    return sizes


@st.composite
def extra_headers(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    names = draw(
        st.lists(
            TOKEN.filter(lambda t: t.lower() not in FRAMING_NAMES) | st.sampled_from(SECRET_NAMES),
            max_size=4,
        )
    )
    return [(n.encode(), draw(VALUE)) for n in names]


@st.composite
def requests(draw: st.DrawFn) -> Req:
    method = draw(st.sampled_from(METHODS))
    target = (
        "/"
        + draw(st.text("abcxyz019/-._~%", max_size=10))
        + draw(st.sampled_from(["", "?q=1&r=a"]))
    )
    framing = draw(st.sampled_from(["none", "length", "chunked"]))
    body = b"" if framing == "none" else draw(st.binary(max_size=300))
    chunks = split_sizes(draw, len(body)) if framing == "chunked" else []
    trailers = (
        draw(st.lists(st.tuples(st.just(b"X-Trailer"), VALUE), max_size=2))
        if framing == "chunked"
        else []
    )
    expect = framing != "none" and draw(st.booleans())
    return Req(
        method,
        target,
        body,
        framing,
        chunks,
        draw(st.booleans()),
        trailers,
        expect,
        draw(extra_headers()),
    )


@st.composite
def responses(draw: st.DrawFn, req: Req, last: bool) -> Resp:
    interim = draw(st.lists(st.sampled_from([100, 102, 103]), max_size=2))
    if req.expect and draw(st.booleans()):
        interim.insert(0, 100)
    status = draw(st.sampled_from([200, 201, 204, 301, 304, 404, 500, 503]))
    bodiless = req.method == "HEAD" or status in (204, 304)
    framings = ["length", "chunked"] + (["close"] if last else [])
    framing = draw(st.sampled_from(framings))
    if bodiless:
        body = b""
        declared = draw(st.integers(0, 5000)) if status != 204 else 0
        if status == 204:
            framing = "none"  # a 204 carries no framing headers at all
    else:
        body = draw(st.binary(max_size=300))
        declared = len(body)
    chunks = split_sizes(draw, len(body)) if framing == "chunked" else []
    return Resp(interim, status, body, framing, chunks, draw(extra_headers()), declared, bodiless)


def http1_requests() -> st.SearchStrategy[Req]:
    """Valid requests; `.wire()` gives their bytes."""
    return requests()


def http1_responses(method: str = "GET", last: bool = True) -> st.SearchStrategy[Resp]:
    """Valid responses to a `method` request; close-delimited bodies only when `last`."""
    req = Req(method, "/", b"", "none", [], False, [], False)
    return responses(req, last)


@st.composite
def conversations(draw: st.DrawFn, max_exchanges: int = 5) -> list[tuple[Req, Resp]]:
    reqs = draw(st.lists(requests(), min_size=1, max_size=max_exchanges))
    return [(r, draw(responses(r, i == len(reqs) - 1))) for i, r in enumerate(reqs)]


def _chunked(
    body: bytes, sizes: list[int], ext: bool, trailers: list[tuple[bytes, bytes]]
) -> bytes:
    out = bytearray()
    pos = 0
    for size in sizes:
        out += (
            b"%x" % size
            + (b";name=val" if ext else b"")
            + b"\r\n"
            + body[pos : pos + size]
            + b"\r\n"
        )
        pos += size
    out += b"0" + (b";last" if ext else b"") + b"\r\n"
    for name, value in trailers:
        out += name + b": " + value + b"\r\n"
    return bytes(out + b"\r\n")


def render_request(req: Req) -> tuple[bytes, bytes]:
    """(head, body) on the wire."""
    lines = [f"{req.method} {req.target} HTTP/1.1".encode(), b"Host: example.test"]
    lines += [n + b": " + v for n, v in req.headers]
    if req.expect:
        lines.append(b"Expect: 100-continue")
    if req.framing == "length":
        lines.append(b"Content-Length: %d" % len(req.body))
        body = req.body
    elif req.framing == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
        body = _chunked(req.body, req.chunks, req.ext, req.trailers)
    else:
        body = b""
    return b"\r\n".join(lines) + b"\r\n\r\n", body


def render_response(resp: Resp) -> bytes:
    out = b"".join(b"HTTP/1.1 %d Interim\r\n\r\n" % s for s in resp.interim)
    lines = [b"HTTP/1.1 %d Reason Phrase" % resp.status]
    lines += [n + b": " + v for n, v in resp.headers]
    if resp.framing == "length":
        lines.append(b"Content-Length: %d" % resp.declared)
        body = resp.body
    elif resp.framing == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
        body = b"" if resp.bodiless else _chunked(resp.body, resp.chunks, False, [])
    elif resp.framing == "none":
        body = b""
    else:
        lines.append(b"Connection: close")
        body = resp.body
    return out + b"\r\n".join(lines) + b"\r\n\r\n" + body
