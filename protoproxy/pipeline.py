"""The message path's stages, in the one order they run.

Every feature that looks at a connection's messages contributes a *filter
factory* (``conn -> Filter | None``) to a fixed, named slot; every feature
that looks at completed exchanges contributes an observer to a fixed slot.
The slots below are the whole order: who installs first does not matter, so
reading this module tells what runs before what (docs/architecture.md).

Per connection the cost is one call per factory when its codec is chosen;
the per-message path is the flat `conn.filters` list this builds.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from protoproxy_codecs.base import Exchange

    from .connection import Connection, Filter

FilterFactory = Callable[["Connection"], "Filter | None"]
ExchangeObserver = Callable[["Connection", "list[Exchange]"], None]


class FilterSlot(IntEnum):
    """Where a filter runs on a connection's messages, first to last."""

    #: the /messages tail: what the peer sent, before anyone rewrites it
    TAIL = 10
    #: the recorder (``record`` listeners): what the peers sent, before rewrites and faults
    RECORD = 15
    #: Kafka broker-address rewriting (and its per-request bookkeeping)
    KAFKA = 20
    #: HTTP/2 call start: counts a call when its headers pass, not when it ends
    CALL_START = 30
    #: message faults: act on messages every filter above already understood
    FAULTS = 40


class ExchangeSlot(IntEnum):
    """Where an observer runs on completed exchanges, first to last."""

    #: fault marks onto ``attrs["fault"]``, so everything after sees them
    MARKS = 10
    #: the generic per-listener exchange families
    STATS = 20
    #: one access-log line per exchange
    ACCESS_LOG = 30
    #: Kafka per-API / topic families, then consumer-group facts
    KAFKA = 40
    #: per-method gRPC and per-route HTTP families
    HTTP = 50


class Pipeline:
    """The registered factories and observers, kept in slot order.

    Within one slot, registration order holds (a stable sort). The exchange
    observers are kept as the flat list `Proxy.exchanges_done` iterates, so
    the order costs nothing per exchange. Slots are filled while the App is
    built; an observer appended to that list later (a test's) runs last.
    """

    def __init__(self) -> None:
        self._factories: list[tuple[FilterSlot, FilterFactory]] = []
        self._observers: list[tuple[ExchangeSlot, ExchangeObserver]] = []
        #: in slot order; `Proxy.exchange_observers` is this very list
        self.exchange_observers: list[ExchangeObserver] = []

    def add_filter(self, slot: FilterSlot, factory: FilterFactory) -> None:
        self._factories.append((slot, factory))
        self._factories.sort(key=_slot)

    def add_exchange_observer(self, slot: ExchangeSlot, observer: ExchangeObserver) -> None:
        self._observers.append((slot, observer))
        self._observers.sort(key=_slot)
        self.exchange_observers[:] = [obs for _, obs in self._observers]

    def build_filters(self, conn: Connection, slots: list[int]) -> list[Filter]:
        """The connection's filters; `slots` gets the slot of each (for `Connection.add_filter`)."""
        filters: list[Filter] = []
        for slot, factory in self._factories:
            f = factory(conn)
            if f is not None:
                filters.append(f)
                slots.append(slot)
        return filters


def is_opaque(codec_cls: type, filters: list[Filter]) -> bool:
    """The zero-decode fast path: an opaque codec (tcp) and no filter to feed."""
    return not filters and getattr(codec_cls, "opaque", False)


def _slot(entry: tuple[int, object]) -> int:
    return entry[0]
