"""The HTTP/1.1 way to end a connection that carried bad bytes.

A client that sent a bad request gets a 400; a client whose upstream answered
with garbage gets a 502; one whose request met a proxy bug gets a 500. All say
`Connection: close` because the codec is unusable after a DecodeError (or a
crash) and the runtime closes right after sending.
"""

from __future__ import annotations


def _reply(status: bytes, reason: str) -> bytes:
    body = f"{reason}\n".encode("ascii", "replace")
    return (
        b"HTTP/1.1 " + status + b"\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        b"Connection: close\r\n"
        b"\r\n" + body
    )


def bad_request(reason: str) -> bytes:
    return _reply(b"400 Bad Request", f"bad request: {reason}")


def bad_gateway(reason: str) -> bytes:
    return _reply(b"502 Bad Gateway", f"bad response from upstream: {reason}")


def internal_error() -> bytes:
    """The proxy failed (a bug, see the runtime's crash boundary), not either peer."""
    return _reply(b"500 Internal Server Error", "proxy internal error")


def request_timeout() -> bytes:
    """The request head did not complete within timeouts.header (slowloris)."""
    return _reply(b"408 Request Timeout", "request head not complete in time")


def overloaded() -> bytes:
    """The proxy's memory budget was exceeded and this connection held the most."""
    return _reply(b"503 Service Unavailable", "proxy memory budget exceeded")
