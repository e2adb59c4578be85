"""What the engine hands the gRPC server: one answer, as plain data.

The engine knows nothing of grpcio, so the server (another module) turns a
`Reply` into initial metadata, messages, a status and trailers; everything here
is JSON-shaped so it can cross a process boundary unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from protoproxy_codecs.grpc.status import STATUS_NAMES  # the one table of status names


class StubError(ValueError):
    """A stub file or stub dict that cannot be used; the message names the file
    (or "api") and the path inside it, e.g. ``stubs/a.yaml: [2].output.code: ...``."""


@dataclass
class Reply:
    """One answer. `messages` carry the pause before each one (seconds), so a
    server stream replays its timing; `delay` is the pause before anything
    (initial metadata included). With `fail_after` the call sends that many
    messages (all of `messages`) and then ends with `status`."""

    headers: dict[str, str]
    messages: list[tuple[float, Any]]
    status: str = "OK"
    details: str = ""
    error_details: list[dict[str, Any]] = field(default_factory=list)
    trailers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    fail_after: int | None = None
    stub_id: str | None = None
    matched: bool = True
    near_misses: list[str] = field(default_factory=list)


_BY_NAME = {name.replace("_", ""): name for name in STATUS_NAMES}
_BY_NAME["CANCELED"] = "CANCELLED"


def status_name(value: object) -> str | None:
    """A status code as GripMock writes it (a number 0-16) or as a name in any
    case, with or without underscores (``NOT_FOUND``, ``NotFound``); None if neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return STATUS_NAMES[value] if 0 <= value < len(STATUS_NAMES) else None
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return status_name(int(text))
        return _BY_NAME.get(text.upper().replace("_", "").replace("-", ""))
    return None
