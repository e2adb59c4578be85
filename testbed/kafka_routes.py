"""Live control of the fake Kafka cluster on the admin API: ``/testbed/kafka/topics``.

``POST /testbed/kafka/topics`` with ``{"name": "t", "partitions": 3, "records":
[seed objects]}`` creates a topic (and seeds it) while the testbed runs: 201,
400 naming the bad field, 409 when the topic exists. ``GET`` lists the topics
with their partitions' log start and end offsets. Errors have the admin API's
native shape, ``{"error": ..., "problems": [[path, message], ...]}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from protoproxy.admin.body import BodyError, read_json
from protoproxy.config_errors import ConfigError, Problem

from .kafka import seeds
from .kafka.admin_api import valid_topic_name

if TYPE_CHECKING:
    from .kafka import FakeKafkaCluster

#: the keys a POST body may have
BODY_KEYS = ("name", "partitions", "records")


def _error(message: str, status: int, problems: list[Problem] | None = None) -> web.Response:
    return web.json_response(
        {"error": message, "problems": [list(p) for p in problems or []]}, status=status
    )


def describe(cluster: FakeKafkaCluster, name: str) -> dict[str, Any]:
    topic = cluster.topology.topics[name]
    return {
        "name": name,
        "partitions": len(topic.partitions),
        "log_start_offsets": [p.log.log_start_offset for p in topic.partitions],
        "end_offsets": [p.log.next_offset for p in topic.partitions],
    }


def _parse(cluster: FakeKafkaCluster, data: Any) -> tuple[str, int, list[seeds.SeedRecord]]:
    """The body's topic, or ConfigError naming the field."""
    if not isinstance(data, dict):
        raise ConfigError([("", "the body is a JSON object with name, partitions, records")])
    unknown = sorted(set(data) - set(BODY_KEYS))
    if unknown:
        raise ConfigError([(k, "unknown key (not allowed here)") for k in unknown])
    name = data.get("name")
    if not isinstance(name, str) or not valid_topic_name(name):
        raise ConfigError(
            [("name", "is required: a topic name of 1-249 letters, digits, '.', '_' or '-'")]
        )
    partitions = data.get("partitions", cluster.default_partitions)
    if (
        isinstance(partitions, bool)
        or not isinstance(partitions, int)
        or not 1 <= partitions <= cluster.max_partitions
    ):
        raise ConfigError(
            [("partitions", f"must be an integer from 1 to {cluster.max_partitions}")]
        )
    records = data.get("records", [])
    if not isinstance(records, list):
        raise ConfigError([("records", "must be a list of seed record objects")])
    return name, partitions, seeds.parse_records(records, partitions, "records")


def topic_routes(cluster: FakeKafkaCluster) -> list[web.RouteDef]:
    async def index(request: web.Request) -> web.Response:
        return web.json_response({"topics": [describe(cluster, n) for n in cluster.topics()]})

    async def create(request: web.Request) -> web.Response:
        try:
            data = await read_json(request)
        except BodyError as exc:
            return _error(str(exc), exc.status)
        try:
            name, partitions, records = _parse(cluster, data)
        except ConfigError as exc:
            return _error(str(exc), 400, exc.problems)
        if name in cluster.topology.topics:
            return _error(f"topic {name!r} already exists", 409, [("name", "already exists")])
        err, msg = cluster.can_create(partitions)
        if err:
            return _error(str(msg), 409)
        cluster.create_topic(name, partitions)
        counts = seeds.append(cluster, name, records)
        return web.json_response(
            {**describe(cluster, name), "seeded": {str(p): n for p, n in sorted(counts.items())}},
            status=201,
        )

    return [web.get("/testbed/kafka/topics", index), web.post("/testbed/kafka/topics", create)]
