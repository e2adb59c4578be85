"""Toxiproxy's model on top of ours: a "proxy" is a listener, a toxic is a fault.

A Toxiproxy proxy maps to a protoproxy listener (`listen`, `upstream`,
`enabled`); one created through the API is a plain `tcp` listener with an
upstream cluster of one endpoint, made at runtime. Every listener, from
config or not, is visible as a proxy, so Toxiproxy clients can put toxics
on the testbed's Kafka or gRPC listeners too.

Toxiproxy names toxics per proxy (two proxies may both have
``latency_downstream``) while fault names are global, so a toxic created
here is the fault ``<proxy>/<toxic>`` matching ``listener: <proxy>``; a
toxic fault made another way that matches the listener shows under its
own name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, get_args

from pydantic import ValidationError

from ..config import Address, Listener, Protocol, Upstream
from ..config_errors import format_errors
from ..listener import ListenerRuntime
from ..runtime_listeners import ListenerApiError, ListenerDirectory
from .actions import TOXIC_ATTRIBUTES
from .model import FaultSpec, Toxic

if TYPE_CHECKING:
    from ..proxy import Proxy
    from .engine import ActiveFault, FaultEngine

#: the Toxiproxy release whose API this follows
TOXIPROXY_VERSION = "2.12.0"
CLUSTER_PREFIX = "toxiproxy:"
#: what `POST /proxies` takes as `protocol` (an extension; Toxiproxy's is always tcp)
PROTOCOLS: tuple[str, ...] = get_args(Protocol)


class ApiError(Exception):
    """An error with Toxiproxy's status code and message."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def not_found(what: str) -> ApiError:
    return ApiError(f"{what} not found", 404)


class ProxyDirectory:
    def __init__(self, proxy: Proxy, engine: FaultEngine) -> None:
        self.proxy = proxy
        self.engine = engine

    # -- proxies -----------------------------------------------------------------
    def get(self, name: str) -> ListenerRuntime:
        lst = self.proxy.listeners.get(name)
        if lst is None:
            raise not_found("proxy")
        return lst

    def proxy_json(self, lst: ListenerRuntime) -> dict[str, Any]:
        if lst.address is not None:
            host, port = lst.address
            listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        else:
            listen = str(lst.config.listen)
        upstream = lst.default.endpoints[0].name if lst.default is not None else ""
        return {
            "name": lst.name,
            "listen": listen,
            "upstream": upstream,
            "enabled": lst.enabled,
            "protocol": lst.config.protocol,  # ours; Toxiproxy clients ignore it
            "toxics": [self.toxic_json(lst.name, f) for f in self.toxics(lst.name)],
        }

    def all(self) -> dict[str, dict[str, Any]]:
        return {name: self.proxy_json(lst) for name, lst in self.proxy.listeners.items()}

    async def create(
        self,
        name: str,
        upstream: str,
        listen: str | None = None,
        enabled: bool = True,
        protocol: str = "tcp",
    ) -> ListenerRuntime:
        """A listener in front of one upstream address.

        `protocol` is ours, not Toxiproxy's (its clients never send it): `tcp`
        by default, or a decoding listener (`http`, `http2`, `grpc`, `kafka`,
        `auto`) whose traffic gets per-message metrics and message faults.
        """
        if not name:
            raise ApiError("missing required field: name", 400)
        if not upstream:
            raise ApiError("missing required field: upstream", 400)
        if name in self.proxy.listeners:
            raise ApiError("proxy already exists", 409)
        if protocol not in PROTOCOLS:
            raise ApiError(
                f"bad request body: protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}",
                400,
            )
        try:
            up_addr = Address(upstream)
            listen_addr = Address(listen or "127.0.0.1:0")
        except ValueError as exc:
            raise ApiError(f"bad request body: {exc}", 400) from None
        cluster_name = CLUSTER_PREFIX + name
        cfg = Listener(
            name=name,
            listen=listen_addr,
            protocol=protocol,  # type: ignore[arg-type]
            upstream=cluster_name,
            enabled=enabled,
        )
        try:
            return await ListenerDirectory(self.proxy).add(
                cfg, Upstream(name=cluster_name, endpoints=[up_addr])
            )
        except ListenerApiError as exc:
            raise ApiError(str(exc), exc.status) from None

    async def update(self, name: str, body: dict[str, Any]) -> ListenerRuntime:
        """Toxiproxy's POST /proxies/{name}: `enabled`, `listen`, `upstream`."""
        lst = self.get(name)
        current = self.proxy_json(lst)
        listen = body.get("listen", current["listen"])
        upstream = body.get("upstream", current["upstream"])
        enabled = body.get("enabled", lst.enabled)
        if not isinstance(enabled, bool):
            raise ApiError("bad request body: enabled must be true or false", 400)
        if listen != current["listen"] or upstream != current["upstream"]:
            # Toxiproxy restarts a proxy whose addresses change; so do we,
            # keeping its toxics (they match by listener name) and its protocol.
            protocol = lst.config.protocol
            await self._drop_listener(lst)
            lst = await self.create(name, upstream, listen, enabled, protocol)
            return lst
        await lst.set_enabled(enabled)
        return lst

    async def delete(self, name: str) -> None:
        lst = self.get(name)
        await self._drop_listener(lst)
        for fault in self.toxics(name):
            self.engine.remove(fault.name)

    async def _drop_listener(self, lst: ListenerRuntime) -> None:
        directory = ListenerDirectory(self.proxy)
        try:
            if lst.default is not None and lst.default.name.startswith(CLUSTER_PREFIX):
                await directory.remove_with_upstream(lst.name, lst.default.name)
            else:
                await directory.remove(lst.name)
        except ListenerApiError as exc:
            raise ApiError(str(exc), exc.status) from None

    async def reset(self) -> None:
        """Toxiproxy's POST /reset: every proxy enabled, every toxic removed."""
        for lst in list(self.proxy.listeners.values()):
            await lst.set_enabled(True)
        for fault in [f for f in self.engine.faults.values() if f.spec.toxic is not None]:
            self.engine.remove(fault.name)

    async def populate(self, items: list[dict[str, Any]]) -> list[ListenerRuntime]:
        """Create these proxies; replace same-named ones whose addresses differ."""
        out = []
        for item in items:
            if not isinstance(item, dict):
                raise ApiError("bad request body: a list of proxies expected", 400)
            name, upstream = item.get("name") or "", item.get("upstream") or ""
            listen = item.get("listen") or "127.0.0.1:0"
            protocol = str(item.get("protocol") or "tcp")
            lst = self.proxy.listeners.get(name)
            if lst is not None and not self._same(lst, listen, upstream):
                await self._drop_listener(lst)
                lst = None
            if lst is None:
                lst = await self.create(
                    name, upstream, listen, bool(item.get("enabled", True)), protocol
                )
            out.append(lst)
        return out

    def _same(self, lst: ListenerRuntime, listen: str, upstream: str) -> bool:
        current = self.proxy_json(lst)
        if current["upstream"] != upstream:
            return False
        try:
            want = Address(listen)
        except ValueError:
            return False
        have = lst.config.listen
        return want.host == have.host and (
            want.port == 0 or want.port == (lst.address or (0, have.port))[1]
        )

    # -- toxics -------------------------------------------------------------------
    def toxics(self, proxy_name: str) -> list[ActiveFault]:
        return [
            f
            for f in self.engine.faults.values()
            if f.spec.toxic is not None and f.spec.match.get("listener") == proxy_name
        ]

    def find_toxic(self, proxy_name: str, toxic: str) -> ActiveFault:
        self.get(proxy_name)
        for fault in self.toxics(proxy_name):
            if fault.name in (f"{proxy_name}/{toxic}", toxic):
                return fault
        raise not_found("toxic")

    @staticmethod
    def display_name(proxy_name: str, fault: ActiveFault) -> str:
        prefix = proxy_name + "/"
        return fault.name[len(prefix) :] if fault.name.startswith(prefix) else fault.name

    def toxic_json(self, proxy_name: str, fault: ActiveFault) -> dict[str, Any]:
        toxic = fault.spec.toxic
        assert toxic is not None
        attributes: dict[str, Any] = dict(TOXIC_ATTRIBUTES[toxic.type])
        attributes.update(toxic.attributes)
        return {
            "name": self.display_name(proxy_name, fault),
            "type": toxic.type,
            "stream": toxic.stream,
            "toxicity": toxic.toxicity,
            "attributes": attributes,
        }

    def add_toxic(self, proxy_name: str, body: dict[str, Any]) -> ActiveFault:
        self.get(proxy_name)
        kind = body.get("type")
        stream = body.get("stream") or "downstream"
        if stream not in ("upstream", "downstream"):
            raise ApiError("stream was invalid, can be either upstream or downstream", 400)
        if kind not in TOXIC_ATTRIBUTES:
            raise ApiError("invalid toxic type", 400)
        toxic_name = body.get("name") or f"{kind}_{stream}"
        if any(self.display_name(proxy_name, f) == toxic_name for f in self.toxics(proxy_name)):
            raise ApiError("toxic already exists", 409)
        spec = self._spec(
            proxy_name,
            f"{proxy_name}/{toxic_name}",
            {
                "type": kind,
                "stream": stream,
                "toxicity": body.get("toxicity", 1.0),
                "attributes": body.get("attributes") or {},
            },
        )
        if spec.name in self.engine.faults:
            raise ApiError("toxic already exists", 409)
        return self.engine.add(spec)

    def update_toxic(self, proxy_name: str, toxic_name: str, body: dict[str, Any]) -> ActiveFault:
        fault = self.find_toxic(proxy_name, toxic_name)
        toxic = fault.spec.toxic
        assert toxic is not None
        merged = toxic.model_dump()
        if "toxicity" in body:
            merged["toxicity"] = body["toxicity"]
        if body.get("stream"):
            merged["stream"] = body["stream"]
        if isinstance(body.get("attributes"), dict):
            merged["attributes"] = {**merged["attributes"], **body["attributes"]}
        spec_dict = fault.spec.model_dump(exclude_none=True)
        spec_dict["toxic"] = merged
        try:
            spec = FaultSpec.model_validate(spec_dict)
        except ValidationError as exc:
            raise ApiError(f"bad request body: {format_errors(exc)[0]}", 400) from None
        return self.engine.update(fault.name, spec)

    def remove_toxic(self, proxy_name: str, toxic_name: str) -> None:
        self.engine.remove(self.find_toxic(proxy_name, toxic_name).name)

    @staticmethod
    def _spec(proxy_name: str, name: str, toxic: dict[str, Any]) -> FaultSpec:
        try:
            return FaultSpec(
                name=name, match={"listener": proxy_name}, toxic=Toxic.model_validate(toxic)
            )
        except ValidationError as exc:
            raise ApiError(f"bad request body: {format_errors(exc)[0]}", 400) from None
