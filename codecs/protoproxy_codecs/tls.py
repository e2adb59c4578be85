"""TLS ClientHello parsing without terminating TLS.

SNI and ALPN are in the clear in the first flight, which is all that
passthrough routing needs. The parser is bounded: a ClientHello spread over
more than MAX_HELLO bytes of records is rejected.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .base import DecodeError, Sniff

HANDSHAKE = 0x16
CLIENT_HELLO = 0x01
EXT_SERVER_NAME = 0x0000
EXT_ALPN = 0x0010
EXT_SUPPORTED_VERSIONS = 0x002B
MAX_HELLO = 64 * 1024


@dataclass(slots=True)
class ClientHello:
    sni: str | None = None
    alpn: list[str] = field(default_factory=list)
    legacy_version: int = 0
    versions: list[int] = field(default_factory=list)
    length: int = 0  # bytes of records the hello occupied


def sniff(head: bytes) -> Sniff:
    """YES if the bytes start like a TLS handshake record."""
    if not head:
        return Sniff.NEED_MORE
    if head[0] != HANDSHAKE:
        return Sniff.NO
    if len(head) < 3:
        return Sniff.NEED_MORE
    # Record versions in the wild: 0x0301 (most ClientHellos), 0x0300..0x0304.
    if head[1] != 0x03 or head[2] > 0x04:
        return Sniff.NO
    if len(head) < 6:
        return Sniff.NEED_MORE
    return Sniff.YES if head[5] == CLIENT_HELLO else Sniff.NO


def parse_client_hello(data: bytes) -> ClientHello | None:
    """Parse a ClientHello from the start of a connection.

    Returns None when more bytes are needed; raises DecodeError when the
    bytes are not a well-formed ClientHello.
    """
    body = bytearray()
    pos = 0
    need: int | None = None
    while need is None or len(body) < need:
        if len(data) < pos + 5:
            return None
        if data[pos] != HANDSHAKE:
            raise DecodeError("not a TLS handshake record", "tls_not_handshake")
        rec_len = int.from_bytes(data[pos + 3 : pos + 5], "big")
        if rec_len == 0 or rec_len > 16384 + 2048:
            raise DecodeError(f"bad TLS record length {rec_len}", "tls_bad_record")
        if len(data) < pos + 5 + rec_len:
            return None
        body += data[pos + 5 : pos + 5 + rec_len]
        pos += 5 + rec_len
        if need is None and len(body) >= 4:
            if body[0] != CLIENT_HELLO:
                raise DecodeError("first handshake message is not ClientHello", "tls_not_hello")
            need = 4 + int.from_bytes(body[1:4], "big")
            if need > MAX_HELLO:
                raise DecodeError(f"ClientHello of {need} bytes is too large", "tls_too_large")
        if pos > MAX_HELLO:
            raise DecodeError("ClientHello too large", "tls_too_large")
    hello = _parse_body(bytes(body[4:need]))
    hello.length = pos
    return hello


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.buf):
            raise DecodeError("truncated ClientHello", "tls_truncated")
        out = self.buf[self.pos : end]
        self.pos = end
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vec(self, len_bytes: int) -> bytes:
        return self.take(self.uint(len_bytes))

    @property
    def left(self) -> int:
        return len(self.buf) - self.pos


def _parse_body(body: bytes) -> ClientHello:
    r = _Reader(body)
    hello = ClientHello(legacy_version=r.uint(2))
    r.take(32)  # random
    r.vec(1)  # session id
    r.vec(2)  # cipher suites
    r.vec(1)  # compression methods
    if r.left == 0:
        return hello
    exts = _Reader(r.vec(2))
    while exts.left:
        ext_type = exts.uint(2)
        ext = _Reader(exts.vec(2))
        if ext_type == EXT_SERVER_NAME and ext.left:
            names = _Reader(ext.vec(2))
            while names.left:
                name_type = names.uint(1)
                name = names.vec(2)
                if name_type == 0 and hello.sni is None:
                    try:
                        hello.sni = name.decode("ascii").lower().rstrip(".")
                    except UnicodeDecodeError as exc:
                        raise DecodeError("SNI is not ASCII", "tls_bad_sni") from exc
        elif ext_type == EXT_ALPN and ext.left:
            protos = _Reader(ext.vec(2))
            while protos.left:
                hello.alpn.append(protos.vec(1).decode("latin-1"))
        elif ext_type == EXT_SUPPORTED_VERSIONS and ext.left:
            versions = _Reader(ext.vec(1))
            while versions.left:
                hello.versions.append(versions.uint(2))
    return hello
