"""What a component's installer may register, and nothing else of the App.

An installer (``protoproxy/*/install.py``) gets the Proxy it serves and a
`Hooks`; it returns its component, which the App keeps as a typed attribute.
Because installers never see the App, components cannot reach into each
other through it, and the App can import them without an import cycle.
Where a filter or exchange observer runs is its slot's (`protoproxy.pipeline`),
not the order installers run in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from .pipeline import ExchangeObserver, ExchangeSlot, FilterFactory, FilterSlot

if TYPE_CHECKING:
    from aiohttp import web

    from .admin.server import AdminServer
    from .config import Listener
    from .proxy import ConnectionObserver, InjectObserver, Proxy

AdminCallback = Callable[["web.Application"], Awaitable[None]]


class Hooks:
    def __init__(self, proxy: Proxy, admin: AdminServer | None) -> None:
        self._proxy = proxy
        self._admin = admin

    # -- the message path ------------------------------------------------------------
    def filter(self, slot: FilterSlot, factory: FilterFactory) -> None:
        """`factory(conn)` runs once a connection's codec is known; None: no filter."""
        self._proxy.pipeline.add_filter(slot, factory)

    def exchanges(self, slot: ExchangeSlot, observer: ExchangeObserver) -> None:
        self._proxy.pipeline.add_exchange_observer(slot, observer)

    # -- connection and listener events -------------------------------------------------
    def codec(self, observer: ConnectionObserver) -> None:
        """Called when a connection's codec is chosen, after its filters are built."""
        self._proxy.codec_observers.append(observer)

    def closed(self, observer: ConnectionObserver) -> None:
        self._proxy.close_observers.append(observer)

    def upstream(self, observer: ConnectionObserver) -> None:
        """Called when a connection's upstream is connected: both outlets exist."""
        self._proxy.upstream_observers.append(observer)

    def listener(self, observer: Callable[[Listener, bool], None]) -> None:
        """Called with (listener config, added) for listeners added or removed at run time."""
        self._proxy.listener_observers.append(observer)

    def injected(self, observer: InjectObserver) -> None:
        """Called with messages a fault made up, as they are written."""
        self._proxy.inject_observers.append(observer)

    # -- the admin API -------------------------------------------------------------------
    @property
    def admin(self) -> bool:
        """Whether there is an admin API to add routes to."""
        return self._admin is not None

    def routes(self, routes: Iterable[web.AbstractRouteDef]) -> None:
        if self._admin is not None:
            self._admin.add_routes(routes)

    def admin_shutdown(self, callback: AdminCallback) -> None:
        """Run as the admin API shuts down (end long-lived responses)."""
        if self._admin is not None:
            self._admin.app.on_shutdown.append(callback)

    def admin_cleanup(self, callback: AdminCallback) -> None:
        """Run once the admin API has stopped."""
        if self._admin is not None:
            self._admin.app.on_cleanup.append(callback)
