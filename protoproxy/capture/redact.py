"""Credentials out of a tapped leg's byte streams, with framing kept (docs/captures.md#redaction).

Each leg gets a `LegRedactor` for its protocol; side 0 carries requests
(client->proxy, proxy->upstream), side 1 responses. A redactor sees the
stream in order in the writer thread, never on the data path, and returns
bytes of the same total length: secrets are overwritten with filler, frames
keep their sizes, so Wireshark and `protoproxy decode` still parse them.

- Kafka: SaslAuthenticate's ``auth_bytes`` (request and response), and after
  a SaslHandshake v0 the bare SASL tokens (whole frames but their size).
- HTTP/1: the values of ``authorization``, ``proxy-authorization``,
  ``cookie`` and ``set-cookie`` header lines (any line starting with such a
  name, body bytes included: no HTTP framing to lose).
- HTTP/2 and gRPC: the same headers in HPACK blocks (`hpack_redact`).

A frame that could hold a secret is held until complete, so what is
emitted may be cut differently from what was read; other bytes pass at
once. Redaction fails closed: bytes a redactor cannot frame (a hole left by
dropped packets, a nonsense size, a bad header block) are filled, and that
direction stays filled.
"""

from __future__ import annotations

import re
import struct

from protoproxy_codecs.base import DecodeError
from protoproxy_codecs.kafka import framing, schema
from protoproxy_codecs.kafka.api_keys import ApiKey
from protoproxy_codecs.kafka.sasl import ROUNDS, UNKNOWN_ROUNDS

from .hpack_redact import SECRET_HEADERS, HpackError, HpackNames

FILL = b"*"
#: the largest frame held whole to be redacted; a larger SASL frame is filled
HOLD_MAX = 1 << 20
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_SASL_AUTH = int(ApiKey.SASL_AUTHENTICATE)
_SASL_HANDSHAKE = int(ApiKey.SASL_HANDSHAKE)


def _fill(n: int) -> bytes:
    return FILL * n


class SideRedactor:
    """One direction of a leg; `feed` and `close` return bytes to write now."""

    blind = False

    def feed(self, data: bytes) -> bytes:
        raise NotImplementedError

    def close(self) -> bytes:
        """The end of the stream: what is still held (filled: it was never judged)."""
        return b""

    def gap(self) -> bytes:
        """Bytes were lost: from here on this direction is filled (fail closed)."""
        held = self.close()
        self.blind = True
        return _fill(len(held))


class LegRedactor:
    """Both directions of one leg: sides[0] requests, sides[1] responses."""

    def __init__(self, sides: tuple[SideRedactor, SideRedactor]) -> None:
        self.sides = sides


# -- Kafka ---------------------------------------------------------------------------------
class _KafkaLeg:
    """What one leg's two directions share: SASL requests in flight, token mode."""

    def __init__(self) -> None:
        self.pending: dict[int, tuple[int, int]] = {}  # correlation id -> (api_key, version)
        self.mechanism = ""
        self.client_id: bytes | None = None
        self.rounds: int | None = None  # token mode: round trips left (-1: unknown)
        self.tokens = 0  # client tokens not yet answered


class KafkaSide(SideRedactor):
    def __init__(self, leg: _KafkaLeg, request: bool) -> None:
        self.leg = leg
        self.request = request
        self.buf = bytearray()
        self.passing = 0  # bytes of the current frame still to pass through...
        self.filling = False  # ...as filler
        self.holding = False

    def feed(self, data: bytes) -> bytes:
        if self.blind:
            return _fill(len(data))
        out: list[bytes] = []
        if self.passing:
            take = min(self.passing, len(data))
            out.append(_fill(take) if self.filling else data[:take])
            self.passing -= take
            data = data[take:]
        if data:
            self._frames(data, out)
        return b"".join(out)

    def _frames(self, data: bytes, out: list[bytes]) -> None:
        """Walk the frames in place: passed frames go out as slices, SASL ones are held."""
        buf = bytes(self.buf) + data if self.buf else data
        n = len(buf)
        pos = emit = 0
        while n - pos >= 4:
            size = _I32.unpack_from(buf, pos)[0]
            if size < 0:
                out.append(buf[emit:pos])
                self.blind = True
                out.append(_fill(n - pos))
                self.buf = bytearray()
                return
            total = 4 + size
            if not self.holding:
                if n - pos < min(total, 14 if self.request else 8):
                    break
                verdict = self._verdict(buf, pos, total)
                if verdict == "hold" and total > HOLD_MAX:
                    verdict = "fill"
                if verdict == "pass":
                    if pos + total > n:
                        self.passing, self.filling = pos + total - n, False
                        pos = n
                        break
                    pos += total
                    continue
                if verdict == "fill":
                    out.append(buf[emit : pos + 4])
                    take = min(total, n - pos)
                    out.append(_fill(take - 4))
                    self.passing, self.filling = total - take, True
                    pos = emit = pos + take
                    continue
                self.holding = True
            if pos + total > n:
                break
            out.append(buf[emit:pos])
            frame = bytearray(buf[pos : pos + total])
            pos = emit = pos + total
            self.holding = False
            self._redact(frame)
            out.append(bytes(frame))
        out.append(buf[emit:pos])
        self.buf = bytearray(buf[pos:]) if pos < n else bytearray()

    def _verdict(self, buf: bytes, at: int, total: int) -> str:
        leg = self.leg
        if self.request:
            if leg.rounds is not None:
                if self._is_request(buf, at, total):
                    leg.rounds, leg.tokens = None, 0
                else:
                    leg.tokens += 1
                    return "fill"
            api_key, version, corr = struct.unpack_from(">hhi", buf, at + 4)
            if api_key in (_SASL_AUTH, _SASL_HANDSHAKE):
                leg.pending[corr] = (api_key, version)
                return "hold"
            return "pass"
        if leg.rounds is not None and leg.tokens:
            leg.tokens -= 1
            if leg.rounds > 0:
                leg.rounds -= 1
                if leg.rounds == 0:
                    leg.rounds = None
            return "fill"
        corr = _I32.unpack_from(buf, at + 4)[0]
        if corr in leg.pending:
            return "hold"
        return "pass"

    def _is_request(self, buf: bytes, at: int, total: int) -> bool:
        """In token mode, a Kafka request with the handshake's client_id ends it."""
        api_key, version, _corr, cid_len = struct.unpack_from(">hhih", buf, at + 4)
        if not schema.is_known(api_key, version) or cid_len < -1 or 14 + cid_len > total:
            return False
        if len(buf) - at < 14 + max(cid_len, 0):
            return False  # not enough held to tell: a token, filled
        cid = None if cid_len < 0 else bytes(buf[at + 14 : at + 14 + cid_len])
        return cid == self.leg.client_id

    def _redact(self, frame: bytearray) -> None:
        end = len(frame)
        try:
            if self.request:
                api_key, version, _corr, cid_len, pos = framing.parse_request_header(frame, 4, end)
                if api_key == _SASL_HANDSHAKE:
                    self.leg.client_id = None if cid_len < 0 else bytes(frame[14 : 14 + cid_len])
                    n = _I16.unpack_from(frame, pos)[0]
                    self.leg.mechanism = bytes(frame[pos + 2 : pos + 2 + max(n, 0)]).decode(
                        "ascii", "replace"
                    )
                    return
                _fill_bytes(frame, pos, end, schema.is_flexible(api_key, version))
                return
            corr = _I32.unpack_from(frame, 4)[0]
            api_key, version = self.leg.pending.pop(corr)
            _corr, pos = framing.parse_response_header(frame, 4, end, api_key, version)
            error = _I16.unpack_from(frame, pos)[0]
            if api_key == _SASL_HANDSHAKE:
                if error == 0 and version == 0:
                    self.leg.rounds = ROUNDS.get(self.leg.mechanism, UNKNOWN_ROUNDS)
                return
            flexible = schema.is_flexible(api_key, version)
            pos += 2
            if flexible:
                n, pos = framing.read_uvarint(frame, pos, end)
                pos += max(n - 1, 0)
            else:
                n = _I16.unpack_from(frame, pos)[0]
                pos += 2 + max(n, 0)
            _fill_bytes(frame, pos, end, flexible)
        except (DecodeError, struct.error, KeyError, IndexError):
            frame[4:] = _fill(end - 4)  # a SASL frame we cannot read: all of it

    def close(self) -> bytes:
        held = len(self.buf)
        self.buf.clear()
        return _fill(held)


def _fill_bytes(frame: bytearray, pos: int, end: int, flexible: bool) -> None:
    """Overwrite the BYTES / COMPACT_BYTES field at `pos` (SaslAuthenticate's auth_bytes)."""
    if flexible:
        n, pos = framing.read_uvarint(frame, pos, end)
        n -= 1
    else:
        n = _I32.unpack_from(frame, pos)[0]
        pos += 4
    stop = min(end, pos + max(n, 0))
    frame[pos:stop] = _fill(stop - pos)


# -- HTTP/1 ---------------------------------------------------------------------------------
_NAMES = tuple(sorted(name.decode() for name in SECRET_HEADERS))
_HEADER = re.compile(
    rb"^(?:" + b"|".join(n.encode() for n in _NAMES) + rb")[ \t]*:", re.IGNORECASE | re.MULTILINE
)
_PREFIXES = frozenset(n[:i].encode() for n in _NAMES for i in range(1, len(n) + 1))


class Http1Side(SideRedactor):
    """Header lines named like a credential have their values filled, wherever they appear."""

    def __init__(self) -> None:
        self.carry = b""
        self.line_start = True
        self.in_value = False
        self.started = False  # a value's first non-blank byte was seen

    def feed(self, data: bytes) -> bytes:
        if self.blind:
            return _fill(len(data))
        buf = bytearray(self.carry + data)
        self.carry = b""
        pos = 0
        if self.in_value:
            pos = self._value(buf, 0)
        for m in list(_HEADER.finditer(bytes(buf), pos)):
            if m.start() < pos or (m.start() == 0 and not self.line_start):
                continue
            self.started = False
            pos = self._value(buf, m.end())
        last = buf.rfind(b"\n")
        tail = bytes(buf[last + 1 :]) if last >= 0 else (bytes(buf) if self.line_start else b"")
        if not self.in_value and tail and tail.lower() in _PREFIXES:
            self.carry = tail
            del buf[len(buf) - len(tail) :]
            self.line_start = True
        else:
            self.line_start = buf.endswith(b"\n")
        return bytes(buf)

    def _value(self, buf: bytearray, start: int) -> int:
        """Fill from `start` to the end of the line; returns where the line ends."""
        if not self.started:  # keep the blanks after the colon
            while start < len(buf) and buf[start] in b" \t":
                start += 1
            self.started = start < len(buf)
        nl = buf.find(b"\n", start)
        if nl < 0:
            end = len(buf) - 1 if buf.endswith(b"\r") else len(buf)
            self.in_value = True
        else:
            end = nl - 1 if nl > start and buf[nl - 1] == 0x0D else nl
            self.in_value = False
        buf[start:end] = _fill(max(end - start, 0))
        return len(buf) if nl < 0 else nl

    def close(self) -> bytes:
        carry, self.carry = self.carry, b""
        return carry  # a name prefix, no value


# -- HTTP/2 ---------------------------------------------------------------------------------
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HEADERS, _PUSH_PROMISE, _CONTINUATION = 0x1, 0x5, 0x9
_END_HEADERS, _PADDED, _PRIORITY = 0x4, 0x8, 0x20
_BLOCK_KINDS = frozenset({_HEADERS, _PUSH_PROMISE, _CONTINUATION})
#: the HEADERS flags that decide whether a frame is a whole, plain block
_SIMPLE = _END_HEADERS | _PADDED | _PRIORITY
MAX_FRAME = (1 << 24) - 1


class Http2Side(SideRedactor):
    def __init__(self, client: bool) -> None:
        self.preface = len(_PREFACE) if client else 0
        self.buf = bytearray()
        self.passing = 0
        self.block: list[bytearray] = []  # held frames of one header block
        self.names = HpackNames()

    def feed(self, data: bytes) -> bytes:
        if self.blind:
            return _fill(len(data))
        out: list[bytes] = []
        if self.preface:
            take = min(self.preface, len(data))
            out.append(data[:take])
            self.preface -= take
            data = data[take:]
        if self.passing:
            take = min(self.passing, len(data))
            out.append(data[:take])
            self.passing -= take
            data = data[take:]
        if data:
            self._frames(data, out)
        return b"".join(out)

    def _frames(self, data: bytes, out: list[bytes]) -> None:
        """Pass whole non-header frames at once; hold header blocks until complete."""
        buf = bytes(self.buf) + data if self.buf else data
        n = len(buf)
        pos = emit = 0
        while n - pos >= 9:
            total = 9 + (buf[pos] << 16 | buf[pos + 1] << 8 | buf[pos + 2])
            kind = buf[pos + 3]
            if (
                kind == _HEADERS
                and not self.block
                and pos + total <= n
                and buf[pos + 4] & _SIMPLE == _END_HEADERS
            ):
                # A whole header block in one unpadded frame (nearly all of them):
                # walked where it lies, copied only if a value was overwritten.
                fragment = buf[pos + 9 : pos + total]
                try:
                    redacted = self.names.redacted(fragment)
                except HpackError:
                    # fail closed: this direction is filled from here on
                    self.blind = True
                    out.append(buf[emit:pos])
                    out.append(_fill(n - pos))
                    self.buf = bytearray()
                    return
                if redacted is not fragment and redacted != fragment:
                    out.append(buf[emit : pos + 9])
                    out.append(redacted)
                    emit = pos + total
                pos += total
                continue
            if kind not in _BLOCK_KINDS and not self.block:
                if pos + total > n:
                    self.passing = pos + total - n
                    pos = n
                    break
                pos += total
                continue
            if pos + total > n:
                if total > HOLD_MAX:
                    out.append(buf[emit:pos])
                    self._give_up(out, n - pos)
                    self.buf.clear()
                    return
                break
            out.append(buf[emit:pos])
            frame = bytearray(buf[pos : pos + total])
            pos = emit = pos + total
            self.block.append(frame)
            if frame[4] & _END_HEADERS or kind not in _BLOCK_KINDS:
                self._redact_block()
                out.extend(bytes(f) for f in self.block)
                self.block = []
        out.append(buf[emit:pos])
        self.buf = bytearray(buf[pos:]) if pos < n else bytearray()

    def _redact_block(self) -> None:
        spans: list[tuple[bytearray, int, int]] = []
        try:
            for f in self.block:
                kind, flags = f[3], f[4]
                start, end = 9, len(f)
                if kind in (_HEADERS, _PUSH_PROMISE):
                    if flags & _PADDED:
                        end -= f[9]
                        start += 1
                    if kind == _HEADERS and flags & _PRIORITY:
                        start += 5
                    if kind == _PUSH_PROMISE:
                        start += 4
                elif kind != _CONTINUATION:
                    raise HpackError("a frame inside a header block")
                if end < start:
                    raise HpackError("padding longer than the frame")
                spans.append((f, start, end))
            block = bytearray(b"".join(bytes(f[s:e]) for f, s, e in spans))
            self.names.redact(block)
        except HpackError:
            self.blind = True
            for f, s, e in spans or [(f, 9, len(f)) for f in self.block]:
                f[s:e] = _fill(e - s)
            return
        at = 0
        for f, s, e in spans:
            f[s:e] = block[at : at + e - s]
            at += e - s

    def _give_up(self, out: list[bytes], pending: int) -> None:
        self.blind = True
        held = sum(len(f) for f in self.block) + pending
        self.block = []
        out.append(_fill(held))

    def close(self) -> bytes:
        held = sum(len(f) for f in self.block) + len(self.buf)
        self.block = []
        self.buf.clear()
        return _fill(held)


def for_protocol(protocol: str) -> LegRedactor | None:
    """The redactor of a leg carrying `protocol`; None: nothing in it to redact."""
    if protocol == "kafka":
        leg = _KafkaLeg()
        return LegRedactor((KafkaSide(leg, True), KafkaSide(leg, False)))
    if protocol == "http":
        return LegRedactor((Http1Side(), Http1Side()))
    if protocol in ("http2", "grpc"):
        return LegRedactor((Http2Side(True), Http2Side(False)))
    return None
