"""Names of the testbed's gRPC service and methods, in one place."""

from __future__ import annotations

PACKAGE = "protoproxy.testbed.v1"
SERVICE = f"{PACKAGE}.TestService"
METHODS: tuple[str, ...] = ("Unary", "ServerStream", "ClientStream", "Bidi")


def method_path(method: str) -> str:
    """``/protoproxy.testbed.v1.TestService/Unary`` for "Unary" (or for the path itself)."""
    return f"/{SERVICE}/{method_name(method)}"


def method_name(method: str) -> str:
    """The short method name for a short name or a full path; ValueError if unknown."""
    name = method.rsplit("/", 1)[-1]
    if name not in METHODS or (method.startswith("/") and method != f"/{SERVICE}/{name}"):
        raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    return name
