"""Listeners added and removed while the proxy runs: one path for every API.

`POST /listeners` (a config listener entry), the Toxiproxy-compatible
`POST /proxies` and the Python API all come here, so a listener made at run
time is validated by the same config model as one in the file, gets the same
per-protocol filters (a `kafka` one opens its broker listeners), and shows in
the effective config (`/config`) and to fault matching. Such a listener binds
to loopback unless `admin.allow_public_listeners` says otherwise: an API on
the admin port must not be a way to open the host to the network. An
upstream address given with it (Toxiproxy's `upstream`) must be allowed by
`admin.upstream_allow` (`protoproxy.admin.guard`), so the API cannot be made
to forward to any host it can reach.
"""

from __future__ import annotations

import re
import ssl
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from .addresses import is_loopback
from .admin.guard import upstream_refusal
from .config import Listener, Upstream
from .config_errors import format_errors
from .listener import ListenerRuntime
from .upstream import Cluster

if TYPE_CHECKING:
    from .proxy import Proxy


class ListenerApiError(Exception):
    """A listener that cannot be added or removed: an HTTP status and the problems."""

    def __init__(self, problems: str | list[str], status: int = 400) -> None:
        self.problems = [problems] if isinstance(problems, str) else problems
        super().__init__("; ".join(self.problems))
        self.status = status


def parse_listener(data: Any) -> Listener:
    """A config listener entry, validated by the config's own model (paths name the field)."""
    if not isinstance(data, dict):
        raise ListenerApiError("body must be a JSON object: a config listener entry")
    try:
        return Listener.model_validate(data)
    except ValidationError as exc:
        raise ListenerApiError(format_errors(exc)) from None


def _brokers_of(name: str) -> re.Pattern[str]:
    return re.compile(re.escape(name) + r"-broker\d+")


class ListenerDirectory:
    """Adds, removes and describes a Proxy's listeners at run time."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    # -- add -------------------------------------------------------------------------
    async def add(self, cfg: Listener, upstream: Upstream | None = None) -> ListenerRuntime:
        """Bind and serve `cfg`; `upstream` is one made for it (Toxiproxy's `upstream`).

        The upstream is registered first and taken back if anything fails, so
        a refused listener leaves nothing behind.
        """
        proxy = self.proxy
        if cfg.name in proxy.listeners:
            raise ListenerApiError(f"name: listener {cfg.name!r} already exists", 409)
        host = cfg.listen.host
        if not is_loopback(host) and not proxy.config.admin.allow_public_listeners:
            raise ListenerApiError(
                f"listen: {host} is not a loopback address; listeners made at run time "
                "bind to loopback unless admin.allow_public_listeners is true",
                403,
            )
        if problem := upstream_refusal(proxy.config.admin, upstream):
            raise ListenerApiError(problem, 403)
        config = proxy.config
        if upstream is not None:
            config.upstreams.append(upstream)
            proxy.clusters[upstream.name] = Cluster(
                upstream, connect_timeout=config.timeouts.connect
            )
        try:
            self._check_upstreams(cfg)
            try:
                lst = ListenerRuntime(proxy, cfg)
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise ListenerApiError(f"tls: {exc}") from None
            config.listeners.append(cfg)
            for observe in proxy.listener_observers:
                observe(cfg, True)
            try:
                if cfg.enabled:
                    await proxy.add_listener(lst)
                else:
                    proxy.listeners[cfg.name] = lst
                await self._start_dependents(cfg.name)
            except OSError as exc:
                await self._forget(cfg.name)
                raise ListenerApiError(str(exc), 500) from None
        except ListenerApiError:
            if upstream is not None:
                self._drop_upstream(upstream.name)
            raise
        return lst

    def _check_upstreams(self, cfg: Listener) -> None:
        known = [u.name for u in self.proxy.config.upstreams]
        wanted = [("upstream", cfg.upstream)] + [
            (f"routes[{i}].upstream", r.upstream) for i, r in enumerate(cfg.routes)
        ]
        problems = [
            f"{where}: unknown upstream {name!r} (known: {', '.join(known) or 'none'})"
            for where, name in wanted
            if name is not None and name not in known
        ]
        if problems:
            raise ListenerApiError(problems)

    async def _start_dependents(self, name: str) -> None:
        """Listeners the new one registered (a Kafka listener's pinned brokers)."""
        pattern = _brokers_of(name)
        for lst in list(self.proxy.listeners.values()):
            if pattern.fullmatch(lst.name) and lst.enabled and lst.server is None:
                await lst.start()

    # -- remove ------------------------------------------------------------------------
    async def remove(self, name: str) -> None:
        """Close a listener and its connections; a Kafka listener takes its brokers along."""
        lst = self.proxy.listeners.get(name)
        if lst is None:
            raise ListenerApiError(f"no listener named {name!r}", 404)
        owner = self._owner(name)
        if owner is not None:
            raise ListenerApiError(
                f"listener {name!r} is a broker listener of Kafka listener {owner!r}; "
                "remove that one",
                409,
            )
        await self._forget(name)

    def _owner(self, name: str) -> str | None:
        for cfg in self.proxy.config.listeners:
            if cfg.protocol == "kafka" and _brokers_of(cfg.name).fullmatch(name):
                return cfg.name
        return None

    def family(self, name: str) -> list[ListenerRuntime]:
        """The listener `name` and the broker listeners it opened (Kafka)."""
        pattern = _brokers_of(name)
        return [lst for n, lst in self.proxy.listeners.items() if n == name or pattern.fullmatch(n)]

    async def _forget(self, name: str) -> None:
        for lst in self.family(name):
            await lst.set_enabled(False)  # its connections close, Toxiproxy's way
        self.retire(name)

    def retire(self, name: str) -> None:
        """Take a listener and its broker listeners out of the proxy, leaving their
        established connections open: they finish on the runtime that accepted them
        (a config reload's drain; `remove` closes them first)."""
        proxy = self.proxy
        for lst in self.family(name):
            lst.stop_accepting()
            del proxy.listeners[lst.name]
            if lst.name != name and lst.default is not None:
                proxy.clusters.pop(lst.default.name, None)  # a broker's own cluster
        cfg = next((c for c in proxy.config.listeners if c.name == name), None)
        if cfg is not None:
            proxy.config.listeners.remove(cfg)
            for observe in proxy.listener_observers:
                observe(cfg, False)

    async def install(self, lst: ListenerRuntime) -> None:
        """Make a listener built (and bound, if enabled) elsewhere part of the proxy:
        the effective config, the listener observers, its pinned broker listeners.
        A config reload binds first, so that a port in use changes nothing."""
        self.proxy.config.listeners.append(lst.config)
        self.proxy.listeners[lst.name] = lst
        for observe in self.proxy.listener_observers:
            observe(lst.config, True)
        await self._start_dependents(lst.name)

    def _drop_upstream(self, name: str) -> None:
        config = self.proxy.config
        config.upstreams[:] = [u for u in config.upstreams if u.name != name]
        self.proxy.clusters.pop(name, None)

    async def remove_with_upstream(self, name: str, upstream: str) -> None:
        """Remove a listener and the upstream that was made for it alone."""
        await self.remove(name)
        if not any(c.upstream == upstream for c in self.proxy.config.listeners):
            self._drop_upstream(upstream)

    # -- describe ----------------------------------------------------------------------
    def describe(self, lst: ListenerRuntime) -> dict[str, Any]:
        cfg = lst.config
        if lst.address is not None:
            host, port = lst.address[:2]
            listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        else:
            listen = str(cfg.listen)
        connections = sum(1 for c in self.proxy.connections.values() if c.listener is lst)
        owner = self._owner(lst.name)
        return {
            "name": lst.name,
            "listen": listen,
            "protocol": cfg.protocol,
            "upstream": cfg.upstream,
            "enabled": lst.enabled,
            "tls": cfg.tls.mode if cfg.tls is not None else None,
            "connections": connections,
            **({"broker_of": owner} if owner is not None else {}),
        }

    def all(self) -> list[dict[str, Any]]:
        return [self.describe(lst) for lst in self.proxy.listeners.values()]
