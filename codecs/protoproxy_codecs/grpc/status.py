"""gRPC status codes and the mappings a passive observer needs.

Sources: grpc's doc/statuscodes.md (names), doc/PROTOCOL-HTTP2.md ("Errors":
the RST_STREAM error code -> status a client reports) and
doc/http-grpc-status-mapping.md (HTTP status when there is no grpc-status).
"""

from __future__ import annotations

from urllib.parse import unquote

STATUS_NAMES: tuple[str, ...] = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)
STATUS_CODES: dict[str, int] = {name: code for code, name in enumerate(STATUS_NAMES)}

# HTTP/2 error code -> status, per PROTOCOL-HTTP2.md. Codes not listed (and
# unknown ones) are reported as INTERNAL, as the brief and grpc clients do.
_RST_STATUS: dict[int, str] = {
    0x0: "INTERNAL",  # NO_ERROR
    0x1: "INTERNAL",  # PROTOCOL_ERROR
    0x2: "INTERNAL",  # INTERNAL_ERROR
    0x3: "INTERNAL",  # FLOW_CONTROL_ERROR
    0x4: "INTERNAL",  # SETTINGS_TIMEOUT
    0x6: "INTERNAL",  # FRAME_SIZE_ERROR
    0x7: "UNAVAILABLE",  # REFUSED_STREAM: the server did not process the request
    0x8: "CANCELLED",  # CANCEL
    0x9: "INTERNAL",  # COMPRESSION_ERROR
    0xA: "INTERNAL",  # CONNECT_ERROR
    0xB: "RESOURCE_EXHAUSTED",  # ENHANCE_YOUR_CALM
    0xC: "PERMISSION_DENIED",  # INADEQUATE_SECURITY
}

_HTTP_STATUS: dict[str, str] = {
    "400": "INTERNAL",
    "401": "UNAUTHENTICATED",
    "403": "PERMISSION_DENIED",
    "404": "UNIMPLEMENTED",
    "429": "UNAVAILABLE",
    "502": "UNAVAILABLE",
    "503": "UNAVAILABLE",
    "504": "UNAVAILABLE",
}


def status_name(code: int) -> str:
    """Name of a grpc-status value; out-of-range codes are UNKNOWN, as clients treat them."""
    return STATUS_NAMES[code] if 0 <= code < len(STATUS_NAMES) else "UNKNOWN"


def parse_status(value: str) -> str:
    try:
        return status_name(int(value))
    except ValueError:
        return "UNKNOWN"


def rst_status(error_code: int) -> str:
    """The status a client reports for RST_STREAM(error_code) without trailers."""
    return _RST_STATUS.get(error_code, "INTERNAL")


def http_status(status: str | None) -> str:
    """The status for a response that ended without grpc-status."""
    if status is None:
        return "INTERNAL"  # no response headers at all
    return _HTTP_STATUS.get(status, "UNKNOWN")


def decode_message(value: str) -> str:
    """grpc-message is percent-encoded UTF-8; bad escapes are kept, bad UTF-8 replaced."""
    return unquote(value, errors="replace") if "%" in value else value
