"""Connection caps and the file-descriptor budget they must fit in.

Why per listener: with one pool, a flood on one listener used every slot and
every fd, so the other listeners and the admin API failed with it. Now each
listener may have its own cap (``listeners[].max_connections``), under the
global one (``limits.max_connections``), and the global one is itself held
under what the fd table can carry while leaving ``limits.admin_reserve`` fds
free: the admin API (its own aiohttp server, with no cap here) and the
sockets accepted only to be refused come out of that reserve.

A proxied connection holds two fds (client and server socket), so the data
plane may admit at most ``(RLIMIT_NOFILE - fds open at start - admin_reserve) // 2``
connections. At start the soft limit is raised to the hard one (the default
soft limit, often 1024, is a relic; the hard limit is what the admin set),
and a configured cap that does not fit is lowered to what fits, with one
WARNING per process saying so and what to change.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from .config import Limits

try:
    import resource
except ImportError:  # not on POSIX: no rlimits to raise or read
    resource = None  # type: ignore[assignment]

log = logging.getLogger("protoproxy.limits")

#: fds one proxied connection holds: the accepted client socket and the upstream one
FDS_PER_CONNECTION = 2

#: rejection reasons (``protoproxy_connections_rejected_total{reason}``) and their detail
REJECT_DETAIL = {
    "listener_max_connections": "the listener's max_connections reached",
    "max_connections": "max_connections reached",
    "fd_limit": "no file descriptors left for another connection (RLIMIT_NOFILE)",
}

_warned: set[tuple[int, int, int]] = set()


@dataclass(frozen=True)
class Nofile:
    """RLIMIT_NOFILE as found (`before`) and as left (`soft`, `hard`) at start."""

    before: int
    soft: int
    hard: int


def raise_nofile() -> Nofile | None:
    """Raise the soft fd limit to the hard one; None where there are no rlimits.

    Only ever raises: a process started with a high soft limit keeps it.
    """
    if resource is None:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        target = max(soft, 1 << 20) if soft != resource.RLIM_INFINITY else soft
    if soft != resource.RLIM_INFINITY and target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):  # macOS caps below "infinity" (OPEN_MAX)
            log.debug("could not raise RLIMIT_NOFILE to %d", target, exc_info=True)
        else:
            return Nofile(soft, target, hard)
    return Nofile(soft, soft, hard)


def open_fds() -> int | None:
    """How many fds the process has open now; None where that cannot be read."""
    for path in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(path)) - 1  # less the one listdir itself held
        except OSError:
            continue
    return None


class ConnectionLimits:
    """Admission for data-plane connections: per listener, global, and fd budget.

    Counts what it admitted, per listener; the proxy releases a slot when an
    admitted connection is accounted closed.
    """

    def __init__(self, limits: Limits) -> None:
        self.max_connections = limits.max_connections
        #: the user asked for this cap: a shortfall is a WARNING, not a note on the default
        self.explicit = "max_connections" in limits.model_fields_set
        self.admin_reserve = limits.admin_reserve
        #: connections the fd table can carry; None until `fit` learned the rlimit
        self.fd_cap: int | None = None
        self.active: dict[str, int] = {}
        self.total = 0

    def fit(self, nofile_soft: int, fds_open: int) -> str | None:
        """Set the fd budget; return the warning to give if the configured cap exceeds it."""
        free = nofile_soft - fds_open - self.admin_reserve
        self.fd_cap = max(0, free // FDS_PER_CONNECTION)
        if self.max_connections <= self.fd_cap:
            return None
        need = self.max_connections * FDS_PER_CONNECTION + fds_open + self.admin_reserve
        return (
            f"limits.max_connections={self.max_connections} needs {need} file descriptors "
            f"({FDS_PER_CONNECTION} per connection + {fds_open} open now + "
            f"limits.admin_reserve={self.admin_reserve}) but RLIMIT_NOFILE is {nofile_soft}: "
            f"at most {self.fd_cap} connections will be accepted; raise the hard limit "
            "(ulimit -Hn, LimitNOFILE=) or lower limits.max_connections"
        )

    def admit(self, listener: str, listener_cap: int | None) -> str | None:
        """Take a slot for a new connection, or say which cap refuses it."""
        if listener_cap is not None and self.active.get(listener, 0) >= listener_cap:
            return "listener_max_connections"
        if self.total >= self.max_connections:
            return "max_connections"
        if self.fd_cap is not None and self.total >= self.fd_cap:
            return "fd_limit"
        self.active[listener] = self.active.get(listener, 0) + 1
        self.total += 1
        return None

    def release(self, listener: str) -> None:
        left = self.active.get(listener, 0) - 1
        if left > 0:
            self.active[listener] = left
        else:
            self.active.pop(listener, None)
        self.total -= 1


def fit_at_start(limits: ConnectionLimits) -> Nofile | None:
    """Raise RLIMIT_NOFILE, size the fd budget, and warn (once per process) if it is short.

    Called once the listeners are bound, so their fds count as open.
    """
    nofile = raise_nofile()
    fds = open_fds()
    if nofile is None or fds is None:
        return nofile
    warning = limits.fit(nofile.soft, fds)
    if warning is not None:
        seen = (limits.max_connections, limits.admin_reserve, nofile.soft)
        if seen not in _warned:
            _warned.add(seen)
            # The default cap (10,000) rarely fits a default hard limit; saying so on
            # every start would be noise, so only a configured cap warns.
            log.log(logging.WARNING if limits.explicit else logging.INFO, "%s", warning)
    return nofile
