"""Wire fault injection into an App: the engine, its filters and its admin routes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import marks
from .engine import FaultEngine
from .message_filter import install_message_faults
from .toxic_manager import ToxicManager

if TYPE_CHECKING:
    from ..app import App


def install(app: App) -> None:
    """Create the engine from config (seed, faults) and expose it as `app.components["faults"]`.

    The stream-toxic manager is `app.components["toxics"]`. The marks
    observer goes to the *front* of the exchange observers so that the access
    log and stats, installed earlier, already see ``attrs["fault"]``.
    """
    engine = FaultEngine(app.proxy, seed=app.config.seed)
    app.components["faults"] = engine
    app.components["toxics"] = ToxicManager(engine, app.proxy)
    app.components["message_faults"] = install_message_faults(engine, app.proxy)
    app.proxy.exchange_observers.insert(0, marks.observe)
    for spec in app.config.faults:
        engine.add(spec)
    if app.admin is not None:
        from ..admin import routes_faults, routes_toxiproxy

        app.admin.add_routes(routes_faults.routes(engine))
        app.admin.add_routes(routes_toxiproxy.routes(app))
