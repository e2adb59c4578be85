"""The (api_key, version) -> kafka-python message class lookup, and header rules.

kafka-python 3 generates its message classes from Kafka's JSON specs, but only
response classes register themselves (per api_key, not per version). We walk
the ``ApiMessage`` class tree once, on first use, to find requests and
responses alike, so nothing here lists APIs by hand: an API is "known" exactly
when kafka-python ships a schema for it.

Versions: kafka-python decodes every version from 0 to the schema's max (it
deliberately ignores the spec's raised minimums), so ``request_class`` answers
for that whole range; ``known_apis`` reports the spec's own ``validVersions``
minimum, which is what a broker would advertise in ApiVersions.
"""

from __future__ import annotations

import importlib
from typing import Any

from .api_keys import ApiKey

# Modules that define ApiMessage subclasses; importing them is what creates
# the classes. Listed as packages (public import paths), not files.
_MESSAGE_PACKAGES = (
    "kafka.protocol.admin",
    "kafka.protocol.consumer",
    "kafka.protocol.metadata",
    "kafka.protocol.producer",
    "kafka.protocol.sasl",
)

_API_VERSIONS = int(ApiKey.API_VERSIONS)  # a plain int: compared once per known version

# Kafka's own error names (org.apache.kafka.common.protocol.Errors) where
# kafka-python's message strings differ; everything else comes from kafka.errors.
_ERROR_NAME_OVERRIDES = {
    -1: "UNKNOWN_SERVER_ERROR",
    0: "NONE",
    6: "NOT_LEADER_OR_FOLLOWER",
    10: "MESSAGE_TOO_LARGE",
    17: "INVALID_TOPIC_EXCEPTION",
}


class _Tables:
    """Everything derived from kafka-python's classes, built once."""

    __slots__ = (
        "error_names",
        "flexible",
        "known",
        "max_version",
        "name_to_key",
        "names",
        "requests",
        "responses",
        "versioned",
    )

    def __init__(self) -> None:
        from kafka.protocol.api_message import ApiMessage

        for module in _MESSAGE_PACKAGES:
            importlib.import_module(module)
        self.requests: dict[int, Any] = {}
        self.responses: dict[int, Any] = {}
        stack = list(ApiMessage.__subclasses__())
        while stack:
            cls = stack.pop()
            stack.extend(cls.__subclasses__())
            # Versioned wrappers (Foo_v3) are subclasses too; keep primaries only.
            if getattr(cls, "_class_version", None) is not None:
                continue
            table = self.requests if cls.is_request() else self.responses
            table[cls.API_KEY] = cls
        self.names: dict[int, str] = {}
        self.known: dict[int, tuple[str, int, int]] = {}
        self.max_version: dict[int, int] = {}
        # (api_key) -> (first flexible version, last flexible version) or None
        self.flexible: dict[int, tuple[int, int] | None] = {}
        for key, req in self.requests.items():
            if key not in self.responses:
                continue
            name = req.name.removesuffix("Request")
            lo, hi = req.valid_versions
            self.names[key] = name
            self.known[key] = (name, lo, hi)
            self.max_version[key] = hi
            fv = req._flexible_versions
            self.flexible[key] = None if fv is None or fv[0] < 0 else fv
        self.name_to_key = {name: key for key, name in self.names.items()}
        for key, hi in self.max_version.items():
            for version in range(hi + 1):
                flexible = is_flexible_in(self.flexible[key], version)
                HEADER_TAGS[(key, version)] = (flexible, flexible and key != _API_VERSIONS)
        self.versioned: dict[tuple[int, int, bool], Any] = {}
        self.error_names = _build_error_names()


def _build_error_names() -> dict[int, str]:
    import kafka.errors as errors

    names = {code: cls.message for code, cls in errors.kafka_errors.items() if code is not None}
    names.update(_ERROR_NAME_OVERRIDES)
    return names


def is_flexible_in(flexible: tuple[int, int] | None, version: int) -> bool:
    return flexible is not None and flexible[0] <= version <= flexible[1]


# (api_key, version) -> (request header has tagged fields, response header has
# them), for every known pair; one dict lookup on the hot path answers both
# "is it known?" and "which header?".
HEADER_TAGS: dict[tuple[int, int], tuple[bool, bool]] = {}

_tables: _Tables | None = None


def tables() -> _Tables:
    global _tables
    if _tables is None:
        _tables = _Tables()
    return _tables


def api_name(api_key: int) -> str:
    """'Produce' for 0; 'Unknown(77)' for keys kafka-python has no schema for."""
    name = tables().names.get(api_key)
    return name if name is not None else f"Unknown({api_key})"


def api_key_of(name: str) -> int:
    """Inverse of api_name; accepts 'Produce' or 'ProduceRequest'. KeyError if unknown."""
    t = tables()
    key = t.name_to_key.get(name.removesuffix("Request").removesuffix("Response"))
    if key is None:
        raise KeyError(f"unknown Kafka API {name!r}")
    return key


def known_apis() -> dict[int, tuple[str, int, int]]:
    """api_key -> (name, min_version, max_version) as the specs declare them."""
    return dict(tables().known)


def is_known(api_key: int, version: int) -> bool:
    """True when kafka-python can decode this (api_key, version)."""
    return (api_key, version) in HEADER_TAGS


def _versioned(api_key: int, version: int, request: bool) -> Any:
    t = tables()
    cache_key = (api_key, version, request)
    cls = t.versioned.get(cache_key)
    if cls is None:
        if not is_known(api_key, version):
            return None
        primary = (t.requests if request else t.responses)[api_key]
        cls = primary[version]
        t.versioned[cache_key] = cls
    return cls


def request_class(api_key: int, version: int) -> Any:
    """The versioned kafka-python request class (e.g. ProduceRequest_v9), or None."""
    return _versioned(api_key, version, True)


def response_class(api_key: int, version: int) -> Any:
    """The versioned kafka-python response class, or None."""
    return _versioned(api_key, version, False)


def is_flexible(api_key: int, version: int) -> bool:
    """Flexible versions use compact encodings, tagged fields and header v2/v1."""
    return is_flexible_in(tables().flexible.get(api_key), version)


def request_header_version(api_key: int, version: int) -> int:
    """2 for flexible versions, else 1 (header v0 died with ControlledShutdown v0)."""
    return 2 if is_flexible(api_key, version) else 1


def response_header_version(api_key: int, version: int) -> int:
    """1 for flexible versions, else 0; ApiVersions responses are always v0.

    ApiVersions is the exception so that a client that does not yet know the
    broker's versions can always read the reply.
    """
    if api_key == _API_VERSIONS:
        return 0
    return 1 if is_flexible(api_key, version) else 0


def error_name(code: int) -> str:
    """Kafka's name for an error code: 0 -> 'NONE', 6 -> 'NOT_LEADER_OR_FOLLOWER'."""
    name = tables().error_names.get(code)
    return name if name is not None else f"UNKNOWN_ERROR_CODE({code})"


tables()  # build once at import: HEADER_TAGS must be complete before any frame is parsed
