"""Which header and metadata values a recording may hold.

A recording is meant to be committed next to tests, so credentials must not
reach it: the names below (and any name that looks like a key, token, secret
or password) are written as ``[redacted]`` unless the listener's
``record.keep_headers`` names them.
"""

from __future__ import annotations

from collections.abc import Iterable

from .model import Headers

REDACTED = "[redacted]"
SECRET_NAMES = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-auth-token",
        "x-csrf-token",
    }
)
_SECRET_PARTS = (
    "token",
    "secret",
    "password",
    "api-key",
    "apikey",
    "api_key",
    "credential",
    "session",
)


def is_secret(name: str) -> bool:
    low = name.lower()
    return low in SECRET_NAMES or any(part in low for part in _SECRET_PARTS)


class Redactor:
    def __init__(self, keep: Iterable[str]) -> None:
        self.keep = frozenset(k.lower() for k in keep)

    def value(self, name: str, value: str) -> str:
        low = name.lower()
        if low not in self.keep and is_secret(low):
            return REDACTED
        return value

    def headers(self, headers: Headers) -> Headers:
        return [(k, self.value(k, v)) for k, v in headers]
