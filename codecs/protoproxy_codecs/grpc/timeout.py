"""grpc-timeout: at most 8 ASCII digits and a unit (PROTOCOL-HTTP2.md, "Timeout")."""

from __future__ import annotations

_UNITS: dict[str, float] = {
    "H": 3600.0,
    "M": 60.0,
    "S": 1.0,
    "m": 1e-3,
    "u": 1e-6,
    "n": 1e-9,
}


def parse_timeout(value: str) -> float | None:
    """Seconds, or None when the header is malformed (a client would reject it)."""
    if not 2 <= len(value) <= 9:
        return None
    scale = _UNITS.get(value[-1])
    digits = value[:-1]
    if scale is None or not digits.isdigit() or not digits.isascii():
        return None
    return int(digits) * scale
