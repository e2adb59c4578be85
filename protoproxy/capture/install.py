"""Wire the taps into an App: connection observers, and the admin routes.

No filter and no exchange observer: a tap hooks the bytes of the
connections it records (`hooks.ConnTap`), so with no tap running the data
path is exactly what it is without this component.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .routes import routes
from .taps import Captures

if TYPE_CHECKING:
    from ..hooks import Hooks
    from ..proxy import Proxy


def install(proxy: Proxy, hooks: Hooks) -> Captures:
    captures = Captures(proxy)
    hooks.upstream(captures.connection_ready)
    hooks.codec(captures.connection_ready)
    hooks.closed(captures.connection_closed)
    hooks.routes(routes(captures))
    return captures
