"""Count and log (rate-limited) the accept() errors the event loop swallows.

Why a loop exception handler: neither loop tells the server's owner that
accept() failed. asyncio's ``loop.create_server`` catches EMFILE, ENFILE,
ENOBUFS and ENOMEM itself, reports them to the loop's exception handler as
``socket.accept() out of system resource`` (with the listening socket), stops
reading that socket and retries after ``asyncio.constants.ACCEPT_RETRY_DELAY``
(1 s); the default handler logs an ERROR with a traceback each time. This
handler claims those contexts: it counts
``protoproxy_accept_errors_total{listener, errno}`` and logs one rate-limited
WARNING, and passes everything else on to the handler it replaced.

uvloop (used when installed) never reports them: libuv's "EMFILE trick"
closes a spare fd, accepts and closes every pending connection, and reopens
the spare, so the clients see a reset and nothing reaches Python. There the
fd budget (protoproxy.fdlimits) is what keeps the process clear of EMFILE;
the counter stays at zero.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .proxy import Proxy

log = logging.getLogger("protoproxy.listener")

#: the asyncio context message for accept errors (asyncio/selector_events.py)
ACCEPT_RESOURCE_MESSAGE = "socket.accept() out of system resource"

#: label for a listening socket that is no data listener: the admin API's aiohttp server
ADMIN_LABEL = "admin"

Handler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]


class AcceptErrorWatch:
    """The loop exception handler that turns accept errors into a counter and one line."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self._previous: Handler | None = None

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop.get_exception_handler() == self.handle:
            return
        self._previous = loop.get_exception_handler()
        loop.set_exception_handler(self.handle)

    def handle(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if context.get("message") == ACCEPT_RESOURCE_MESSAGE and isinstance(exc, OSError):
            listener = self.listener_of(context)
            if listener is None and isinstance(
                getattr(self._previous, "__self__", None), AcceptErrorWatch
            ):
                pass  # another proxy on this loop installed first: its socket, perhaps
            else:
                self.accept_failed(listener or ADMIN_LABEL, exc)
                return
        if self._previous is not None:
            self._previous(loop, context)
        else:
            loop.default_exception_handler(context)

    def accept_failed(self, listener: str, exc: OSError) -> None:
        name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        self.proxy.metrics.accept_errors.inc((listener, name))
        self.proxy.warnings.warning(
            log,
            ("accept", listener, name),
            "listener %s: accept() failed: %s (%s); not accepting for a while",
            listener,
            name,
            exc.strerror or exc,
        )

    def listener_of(self, context: Mapping[str, Any]) -> str | None:
        """The data listener whose socket failed, by its bound address; None if none is."""
        sock = context.get("socket")
        if sock is None:
            return None
        try:
            address = sock.getsockname()
        except OSError:
            return None
        for lst in self.proxy.listeners.values():
            server = lst.server
            if server is None:
                continue
            for s in server.sockets:
                if s.getsockname() == address:
                    return lst.name
        return None
