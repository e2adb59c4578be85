"""Codecs by name, and protocol detection by sniffing the first bytes.

Codec modules are imported lazily so that a proxy that only speaks TCP does
not pay for loading kafka-python's schemas or hpack.
"""

from __future__ import annotations

import importlib

from .base import Codec, Sniff

# name -> "module:Class". Sniff order is the order of SNIFF_ORDER, fixed by design:
# TLS ClientHello, then the HTTP/2 preface, then HTTP/1, then Kafka.
_BUILTIN: dict[str, str] = {
    "tcp": "protoproxy_codecs.tcp:TcpCodec",
    "http2": "protoproxy_codecs.http2:Http2Codec",
    "http": "protoproxy_codecs.http1:Http1Codec",
    "kafka": "protoproxy_codecs.kafka:KafkaCodec",
}
SNIFF_ORDER: tuple[str, ...] = ("tls", "http2", "http", "kafka")

_loaded: dict[str, type[Codec]] = {}
_extra: dict[str, type[Codec]] = {}


def register(cls: type[Codec]) -> type[Codec]:
    """Register a codec class under its `name` (usable as a decorator)."""
    _extra[cls.name] = cls
    return cls


def names() -> list[str]:
    return sorted({*_BUILTIN, *_extra})


def get(name: str) -> type[Codec]:
    """The codec class for `name`; KeyError names the known ones."""
    if name in _extra:
        return _extra[name]
    cls = _loaded.get(name)
    if cls is not None:
        return cls
    target = _BUILTIN.get(name)
    if target is None:
        raise KeyError(f"unknown codec {name!r}; known: {', '.join(names())}")
    module_name, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    _loaded[name] = cls
    return cls


def available(name: str) -> bool:
    try:
        get(name)
    except (KeyError, ImportError, AttributeError):
        return False
    return True


def sniff(head: bytes) -> tuple[str | None, Sniff]:
    """Detect the protocol of a connection from its first bytes.

    Returns (name, YES) on a match, (None, NEED_MORE) while an earlier
    candidate in the fixed order still needs bytes, and (None, NO) when
    nothing matches (the caller falls back to tcp).
    """
    from . import tls

    for name in SNIFF_ORDER:
        if name == "tls":
            verdict = tls.sniff(head)
        elif available(name):
            verdict = get(name).sniff(head)
        else:
            continue
        if verdict is Sniff.YES:
            return name, Sniff.YES
        if verdict is Sniff.NEED_MORE:
            return None, Sniff.NEED_MORE
    return None, Sniff.NO
