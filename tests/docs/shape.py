"""Does a JSON example have the shape of what the live service answers?

A documented response is an example, so its values differ from a live one; its
keys and types must not. Every key of a documented object must be in the live
object, with a value of the same kind, recursively. An object whose keys are data
(topics, groups, label values) is recognised by having no key in common with the
live one, or by scalar values of one kind under keys that are not snake_case
names; its values are then compared with any of the live values. An empty live
object, like an empty live list, leaves nothing to compare. A documented
list item must match some live item. ``null`` and the string ``"..."`` stand for
anything, and an empty live list or a live ``null`` leaves nothing to compare.
"""

from __future__ import annotations

import re
from typing import Any

_FIELD = re.compile(r"[a-z][a-z0-9_]*")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return "null"


def _is_map(doc: dict[str, Any], live: dict[str, Any]) -> bool:
    """Keys that are data, not field names: none shared with the live object, or
    scalar values of one kind under keys that are not snake_case field names
    (gRPC status names, label values)."""
    if not set(doc) & set(live):
        return True
    kinds = {_kind(v) for v in doc.values()}
    scalar = len(kinds) == 1 and kinds <= {"number", "string", "bool"}
    return scalar and not all(_FIELD.fullmatch(k) for k in doc)


def differences(doc: Any, live: Any, where: str = "$") -> list[str]:
    if doc is None or doc == "..." or live is None:
        return []
    if _kind(doc) != _kind(live):
        return [f"{where}: documented as {_kind(doc)}, live is {_kind(live)}: {_short(live)}"]
    if isinstance(doc, dict):
        if not live:
            return []
        if _is_map(doc, live):
            sample = next(iter(live.values()))
            return [p for k, v in doc.items() for p in differences(v, sample, f"{where}.{k}")]
        out: list[str] = []
        for key, value in doc.items():
            if key not in live:
                out.append(
                    f"{where}: documented key {key!r} is missing (live keys: {sorted(live)})"
                )
            else:
                out.extend(differences(value, live[key], f"{where}.{key}"))
        return out
    if isinstance(doc, list) and live:
        out = []
        for i, item in enumerate(doc):
            if item in (None, "..."):
                continue
            tries = [differences(item, candidate, f"{where}[{i}]") for candidate in live]
            if all(tries):
                out.extend(min(tries, key=len))
        return out
    return []


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 120 else text[:117] + "..."
