"""Wire the recorder into an App: one filter slot, one writer per recording listener.

The filter factory answers None on every listener without ``record``, so
they keep their filter list (and TCP its zero-decode path) unchanged: the
cost of the feature when off is one attribute read per new connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..pipeline import FilterSlot
from .capture import ConnectionCapture
from .writer import RecordWriter

if TYPE_CHECKING:
    from ..config import Listener, Record
    from ..connection import Connection
    from ..hooks import Hooks
    from ..proxy import Proxy


class Recorder:
    """Every recording listener's writer, as `app.record`."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.dropped = proxy.stats.counter(
            "protoproxy_record_dropped_total",
            "Recordings not written (queue full, caps, too large, undecodable)",
            ("listener", "reason"),
        )
        #: by record folder: listeners sharing one share its writer (the config
        #: checks they share its settings), and Kafka broker listeners their bootstrap's
        self.writers: dict[str, RecordWriter] = {}

    def writer(self, listener: Listener, record: Record) -> RecordWriter:
        """The writer of `record.dir`, named after the first configured listener using it."""
        where = str(record.dir)
        w = self.writers.get(where)
        if w is None:
            users = [
                lst
                for lst in self.proxy.config.listeners
                if lst.record is not None and str(lst.record.dir) == where
            ] or [listener]
            reflect_from = next(
                (
                    r
                    for lst in users
                    if lst.protocol in ("grpc", "http2", "auto")
                    and (r := self._reflect_from(lst)) is not None
                ),
                None,
            )
            ports: dict[str, int] = {}
            for lst in users:
                kind = "http" if lst.protocol == "http" else "grpc"
                if lst.protocol in ("grpc", "http2", "http"):
                    ports.setdefault(kind, lst.listen.port)
            w = self.writers[where] = RecordWriter(
                users[0].name, record, self.dropped, reflect_from, ports
            )
        return w

    def _reflect_from(self, listener: Listener) -> str | None:
        if listener.upstream is None:
            return None
        try:
            up = self.proxy.config.upstream(listener.upstream)
        except KeyError:
            return None
        return str(up.endpoints[0])

    def filter(self, conn: Connection) -> ConnectionCapture | None:
        """The FilterSlot.RECORD factory."""
        cfg = conn.listener.config
        record = cfg.record
        if record is None or conn.protocol == "tcp":
            return None
        return ConnectionCapture(self.writer(cfg, record), conn.protocol, cfg.name)

    async def flush(self) -> None:
        """Wait until every recording submitted so far is on disk."""
        for w in list(self.writers.values()):
            await w.flush()

    async def close(self) -> None:
        for w in list(self.writers.values()):
            await w.close()


def install(proxy: Proxy, hooks: Hooks) -> Recorder:
    rec = Recorder(proxy)
    hooks.filter(FilterSlot.RECORD, rec.filter)
    return rec
