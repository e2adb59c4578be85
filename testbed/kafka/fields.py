"""Defensive reads of decoded request fields.

kafka-python decodes a length of -1 as None even for arrays the schema says are
not nullable. A real broker would fail such a request; we answer it as if the
array were empty, so a hostile or buggy client cannot crash a handler.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def items(value: Iterable[T] | None) -> Iterable[T]:
    return value if value is not None else ()


def text(value: Any) -> str:
    """A string field, with null read as ""."""
    return value if isinstance(value, str) else ""
