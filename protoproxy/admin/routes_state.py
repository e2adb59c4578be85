"""Live state: /connections, /upstreams, /config, /kafka/brokers, /kafka/groups, /grpc/methods."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from ..observe import redact
from ..observe.stats import Counter
from ..observe.upstreams import UPSTREAM_ERRORS

if TYPE_CHECKING:
    from ..connection import Connection
    from ..http.inventory import GrpcInventory
    from ..kafka.component import KafkaComponent
    from ..proxy import Proxy


def connection_json(conn: Connection) -> dict[str, Any]:
    row = {
        "id": conn.id,
        "listener": conn.listener.name,
        "downstream": conn.client.peername if conn.client is not None else None,
        "upstream": conn.cluster.name if conn.cluster is not None else None,
        "endpoint": conn.endpoint.name if conn.endpoint is not None else None,
        "protocol": conn.protocol,
        "bytes_upstream": conn.bytes[0],
        "bytes_downstream": conn.bytes[1],
        "age": round(conn.age, 6),
        "sni": conn.sni,
        "alpn": conn.alpn,
        "state": conn.state,
    }
    toxics = conn.extra.get("toxics")  # stream toxics applied (protoproxy.faults)
    if toxics:
        row["toxics"] = list(toxics)
    return row


class _Snapshotting(Protocol):
    def snapshot(self) -> Any: ...


def _snapshot(comp: _Snapshotting | None, key: str) -> dict[str, Any]:
    """A component's snapshot(), or an empty one when it is not installed."""
    if comp is None:
        return {key: [], "installed": False}
    data = comp.snapshot()
    if isinstance(data, dict):
        return {"installed": True, **data}
    return {key: data, "installed": True}


def routes(
    proxy: Proxy, kafka: KafkaComponent | None, grpc: GrpcInventory | None
) -> list[web.RouteDef]:
    async def connections(request: web.Request) -> web.Response:
        listener = request.query.get("listener")
        rows = [
            connection_json(c)
            for c in list(proxy.connections.values())
            if listener is None or c.listener.name == listener
        ]
        return web.json_response({"connections": rows, "count": len(rows)})

    async def upstreams(request: web.Request) -> web.Response:
        ended = proxy.stats.families.get(UPSTREAM_ERRORS)
        ended_values = ended.values if isinstance(ended, Counter) else {}
        out = []
        for cluster in proxy.clusters.values():
            eps = []
            for ep in cluster.endpoints:
                broken = {
                    key[2]: int(v)
                    for key, v in ended_values.items()
                    if key[0] == cluster.name and key[1] == ep.name
                }
                eps.append(
                    {
                        "endpoint": ep.name,
                        "connections_total": ep.connections,
                        "connections_active": ep.active,
                        "connect_failures": dict(ep.failures),
                        "connection_errors": broken,
                        "errors_total": sum(ep.failures.values()) + sum(broken.values()),
                    }
                )
            out.append({"name": cluster.name, "endpoints": eps})
        return web.json_response({"upstreams": out})

    async def config(request: web.Request) -> web.Response:
        return web.json_response(redact.config(proxy.config))

    async def kafka_brokers(request: web.Request) -> web.Response:
        return web.json_response(_snapshot(kafka, "brokers"), dumps=_dumps)

    async def kafka_groups(request: web.Request) -> web.Response:
        if kafka is None:
            return web.json_response({"installed": False, "clusters": {}})
        return web.json_response({"installed": True, **kafka.groups_snapshot()}, dumps=_dumps)

    async def grpc_methods(request: web.Request) -> web.Response:
        return web.json_response(_snapshot(grpc, "methods"), dumps=_dumps)

    return [
        web.get("/connections", connections),
        web.get("/upstreams", upstreams),
        web.get("/config", config),
        web.get("/kafka/brokers", kafka_brokers),
        web.get("/kafka/groups", kafka_groups),
        web.get("/grpc/methods", grpc_methods),
    ]


def _dumps(obj: Any) -> str:
    import json

    return json.dumps(obj, default=str)
