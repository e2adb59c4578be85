"""ApiVersions, Metadata, DescribeCluster, CreateTopics, DeleteTopics, DescribeConfigs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from protoproxy_codecs.kafka import schema
from protoproxy_codecs.kafka.api_keys import ApiKey

from . import errors
from .fields import items, text
from .topology import NO_LEADER, Topic
from .versions import SUPPORTED

if TYPE_CHECKING:
    from .cluster import FakeKafkaCluster
    from .dispatch import Request

_LEGAL_TOPIC = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")


def valid_topic_name(name: str | None) -> bool:
    return bool(name) and name not in (".", "..") and _LEGAL_TOPIC.match(name) is not None


# -- ApiVersions -----------------------------------------------------------------


def api_versions_body(
    version: int,
    error: int = errors.NONE,
    supported: Mapping[int, tuple[int, int]] = SUPPORTED,
) -> Any:
    R = schema.response_class(ApiKey.API_VERSIONS, version)
    AV = R.ApiVersion
    keys = [
        AV(api_key=k, min_version=lo, max_version=hi) for k, (lo, hi) in sorted(supported.items())
    ]
    return R(error_code=error, api_keys=keys, throttle_time_ms=0)


def api_versions(req: Request, body: Any) -> Any:
    return api_versions_body(req.version, supported=req.cluster.supported)


# -- Metadata ----------------------------------------------------------------------


def _topic_metadata(R: Any, cluster: FakeKafkaCluster, t: Topic) -> Any:
    TM = R.MetadataResponseTopic
    PM = TM.MetadataResponsePartition
    topology = cluster.topology
    parts = []
    for p in t.partitions:
        isr = topology.isr(p)
        offline = [n for n in p.replicas if n not in isr]
        err = errors.LEADER_NOT_AVAILABLE if p.leader == NO_LEADER else errors.NONE
        parts.append(
            PM(
                error_code=err,
                partition_index=p.index,
                leader_id=p.leader,
                leader_epoch=p.leader_epoch,
                replica_nodes=list(p.replicas),
                isr_nodes=isr,
                offline_replicas=offline,
            )
        )
    return TM(
        error_code=errors.NONE,
        name=t.name,
        topic_id=t.topic_id,
        is_internal=False,
        partitions=parts,
    )


def _brokers(R: Any, cluster: FakeKafkaCluster, cls_name: str) -> list[Any]:
    B = getattr(R, cls_name)
    if cls_name == "DescribeClusterBroker":
        return [
            B(broker_id=b.node_id, host=b.host, port=b.port, rack=b.rack)
            for b in cluster.topology.live_brokers()
        ]
    return [
        B(node_id=b.node_id, host=b.host, port=b.port, rack=b.rack)
        for b in cluster.topology.live_brokers()
    ]


def metadata(req: Request, body: Any) -> Any:
    cluster = req.cluster
    topology = cluster.topology
    R = req.response_class()
    requested = body.topics
    if requested is None or (req.version == 0 and not requested):
        names: list[str] = sorted(topology.topics)
    else:
        names = [text(t.name) for t in requested]
    allow_create = body.allow_auto_topic_creation and cluster.auto_create_topics
    out = []
    for name in names:
        t = topology.topics.get(name)
        if (
            t is None
            and allow_create
            and valid_topic_name(name)
            and not cluster.can_create(cluster.default_partitions)[0]
        ):
            t = cluster.create_topic(name)
        if t is None:
            err = (
                errors.UNKNOWN_TOPIC_OR_PARTITION
                if valid_topic_name(name)
                else errors.INVALID_TOPIC_EXCEPTION
            )
            out.append(
                R.MetadataResponseTopic(error_code=err, name=name, is_internal=False, partitions=[])
            )
            continue
        out.append(_topic_metadata(R, cluster, t))
    return R(
        throttle_time_ms=0,
        brokers=_brokers(R, cluster, "MetadataResponseBroker"),
        cluster_id=cluster.cluster_id,
        controller_id=cluster.controller_id(),
        topics=out,
    )


def describe_cluster(req: Request, body: Any) -> Any:
    cluster = req.cluster
    R = req.response_class()
    return R(
        throttle_time_ms=0,
        error_code=errors.NONE,
        error_message=None,
        cluster_id=cluster.cluster_id,
        controller_id=cluster.controller_id(),
        brokers=_brokers(R, cluster, "DescribeClusterBroker"),
    )


# -- CreateTopics / DeleteTopics ------------------------------------------------------


def create_topics(req: Request, body: Any) -> Any:
    cluster = req.cluster
    R = req.response_class()
    TR = R.CreatableTopicResult
    out = []
    for ct in items(body.topics):
        name = ct.name
        partitions = ct.num_partitions if ct.num_partitions != -1 else cluster.default_partitions
        rf = (
            ct.replication_factor
            if ct.replication_factor != -1
            else cluster.default_replication_factor
        )
        err, msg = errors.NONE, None
        if not valid_topic_name(name):
            err, msg = errors.INVALID_TOPIC_EXCEPTION, f"illegal topic name {name!r}"
        elif name in cluster.topology.topics:
            err, msg = errors.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists."
        elif ct.assignments:
            err, msg = errors.INVALID_REQUEST, "manual replica assignment is not supported"
        elif partitions <= 0:
            err, msg = errors.INVALID_PARTITIONS, "number of partitions must be positive"
        elif cluster.can_create(partitions)[0]:
            err, msg = cluster.can_create(partitions)
        elif not 0 < rf <= len(cluster.topology.live_brokers()):
            err, msg = (
                errors.INVALID_REPLICATION_FACTOR,
                f"replication factor {rf} larger than available brokers",
            )
        topic_id = None
        if err == errors.NONE and not body.validate_only:
            configs = {text(c.name): text(c.value) for c in items(ct.configs)}
            topic_id = cluster.create_topic(name, partitions, rf, configs).topic_id
        ok = err == errors.NONE
        out.append(
            TR(
                name=name,
                topic_id=topic_id,
                error_code=err,
                error_message=msg,
                num_partitions=partitions if ok else -1,
                replication_factor=rf if ok else -1,
                configs=[],
            )
        )
    return R(throttle_time_ms=0, topics=out)


def delete_topics(req: Request, body: Any) -> Any:
    cluster = req.cluster
    R = req.response_class()
    out = []
    for name in items(body.topic_names):
        if name in cluster.topology.topics:
            cluster.delete_topic(name)
            err = errors.NONE
        else:
            err = errors.UNKNOWN_TOPIC_OR_PARTITION
        out.append(R.DeletableTopicResult(name=name, error_code=err))
    return R(throttle_time_ms=0, responses=out)


# -- DescribeConfigs -------------------------------------------------------------------

TOPIC_RESOURCE = 2
BROKER_RESOURCE = 4
_TOPIC_DEFAULTS = {
    "cleanup.policy": "delete",
    "compression.type": "producer",
    "max.message.bytes": "1048588",
    "min.insync.replicas": "1",
    "retention.bytes": "-1",
    "retention.ms": "604800000",
}
_DEFAULT_CONFIG = 5  # ConfigSource.DEFAULT_CONFIG
_DYNAMIC_TOPIC_CONFIG = 1


def describe_configs(req: Request, body: Any) -> Any:
    cluster = req.cluster
    R = req.response_class()
    RR = R.DescribeConfigsResult
    CR = RR.DescribeConfigsResourceResult
    out = []
    for res in items(body.resources):
        err, msg, configs = errors.NONE, None, []
        if res.resource_type == TOPIC_RESOURCE:
            t = cluster.topology.topics.get(res.resource_name)
            if t is None:
                err, msg = errors.UNKNOWN_TOPIC_OR_PARTITION, "unknown topic"
            else:
                values = {
                    **{k: (v, _DEFAULT_CONFIG) for k, v in _TOPIC_DEFAULTS.items()},
                    **{k: (v, _DYNAMIC_TOPIC_CONFIG) for k, v in t.configs.items()},
                }
                keys = res.configuration_keys
                for k in sorted(values) if keys is None else keys:
                    if k in values:
                        v, src = values[k]
                        configs.append(
                            CR(
                                name=k,
                                value=v,
                                read_only=False,
                                config_source=src,
                                is_default=src == _DEFAULT_CONFIG,
                                is_sensitive=False,
                                synonyms=[],
                            )
                        )
        elif res.resource_type == BROKER_RESOURCE:
            values = {
                "auto.create.topics.enable": str(cluster.auto_create_topics).lower(),
                "num.partitions": str(cluster.default_partitions),
            }
            for k in sorted(values):
                configs.append(
                    CR(
                        name=k,
                        value=values[k],
                        read_only=True,
                        config_source=_DEFAULT_CONFIG,
                        is_default=True,
                        is_sensitive=False,
                        synonyms=[],
                    )
                )
        else:
            err, msg = errors.INVALID_REQUEST, f"resource type {res.resource_type} not supported"
        out.append(
            RR(
                error_code=err,
                error_message=msg,
                resource_type=res.resource_type,
                resource_name=res.resource_name,
                configs=configs,
            )
        )
    return R(throttle_time_ms=0, results=out)


# -- SaslHandshake / SaslAuthenticate after authentication -------------------------------
# While a connection authenticates, testbed.kafka.sasl_gate answers these; once it
# is past the gate (or on a cluster without SASL) Kafka answers ILLEGAL_SASL_STATE.


def sasl_handshake(req: Request, body: Any) -> Any:
    R = req.response_class()
    return R(error_code=errors.ILLEGAL_SASL_STATE, mechanisms=[])


def sasl_authenticate(req: Request, body: Any) -> Any:
    R = req.response_class()
    return R(
        error_code=errors.ILLEGAL_SASL_STATE,
        error_message="SaslAuthenticate request received after successful authentication",
        auth_bytes=b"",
        session_lifetime_ms=0,
    )
