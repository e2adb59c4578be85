"""Wire fault injection into an App: the engine, its filters and its admin routes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .engine import FaultEngine

if TYPE_CHECKING:
    from ..app import App


def install(app: App) -> None:
    """Create the engine from config (seed, faults) and expose it as `app.components["faults"]`."""
    engine = FaultEngine(app.proxy, seed=app.config.seed)
    app.components["faults"] = engine
    for spec in app.config.faults:
        engine.add(spec)
