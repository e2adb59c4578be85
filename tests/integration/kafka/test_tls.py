"""TLS on both sides: clients speak TLS to the proxy (terminated there), the proxy
originates TLS to TLS-only brokers, verifying each broker as its own host.
Broker listeners inherit both settings from the bootstrap listener/upstream."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from protoproxy_codecs.kafka import framing

from . import clients
from .rig import KafkaRig

PARTITIONS = 6
N = 2000


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("kafka-tls")
    out: dict[str, Path] = {}
    client_ca, broker_ca = trustme.CA(), trustme.CA()
    client_ca.cert_pem.write_to_path(str(d / "client-ca.pem"))
    broker_ca.cert_pem.write_to_path(str(d / "broker-ca.pem"))
    proxy_leaf = client_ca.issue_cert("127.0.0.1", "localhost")
    proxy_leaf.private_key_and_cert_chain_pem.write_to_path(str(d / "proxy.pem"))
    proxy_leaf.private_key_pem.write_to_path(str(d / "proxy.key"))
    broker_leaf = broker_ca.issue_cert("127.0.0.1")
    broker_leaf.private_key_and_cert_chain_pem.write_to_path(str(d / "broker.pem"))
    out.update(
        {
            "client_ca": d / "client-ca.pem",
            "broker_ca": d / "broker-ca.pem",
            "proxy": d / "proxy.pem",
            "proxy_key": d / "proxy.key",
            "broker": d / "broker.pem",
        }
    )
    return out


@pytest.fixture
def tls_rig(pki: dict[str, Path]) -> Iterator[KafkaRig]:
    broker_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    broker_ctx.load_cert_chain(str(pki["broker"]))
    with KafkaRig(
        brokers=3,
        cluster_ssl=broker_ctx,
        listener_tls={"cert": str(pki["proxy"]), "key": str(pki["proxy_key"])},
        upstream_tls={"ca": str(pki["broker_ca"])},
    ) as rig:
        yield rig


def _check(rig: KafkaRig, topic: str, produced: clients.Produced, consumed: clients.Consumed):
    clients.check_exactly_once_in_order(consumed, produced)
    assert sum(map(len, produced.values())) == N
    rig.assert_no_bypass()
    broker_map = rig.component.broker_map("kafka")
    assert sorted(broker_map) == [0, 1, 2]
    tls_failures = rig.family("protoproxy_tls_handshake_failures_total")
    assert not tls_failures, tls_failures


def test_librdkafka_over_tls_both_sides(tls_rig: KafkaRig, pki: dict[str, Path]) -> None:
    tls_rig.create_topic("tls-rd", PARTITIONS)
    conf = {"security.protocol": "SSL", "ssl.ca.location": str(pki["client_ca"])}
    vals = clients.values(N)
    produced = clients.confluent_produce(tls_rig.bootstrap, "tls-rd", vals, conf)
    consumed = clients.confluent_consume(tls_rig.bootstrap, "tls-rd", "tls-rd", N, conf)
    _check(tls_rig, "tls-rd", produced, consumed)


def test_kafka_python_over_tls_both_sides(tls_rig: KafkaRig, pki: dict[str, Path]) -> None:
    tls_rig.create_topic("tls-kp", PARTITIONS)
    conf = {"security_protocol": "SSL", "ssl_cafile": str(pki["client_ca"])}
    vals = clients.values(N)
    produced = clients.kafka_python_produce(tls_rig.bootstrap, "tls-kp", vals, **conf)
    consumed = clients.kafka_python_consume(tls_rig.bootstrap, "tls-kp", "tls-kp", N, **conf)
    _check(tls_rig, "tls-kp", produced, consumed)


def test_wrong_broker_ca_is_refused(pki: dict[str, Path]) -> None:
    """Verification toward brokers is on: a broker cert from another CA fails the handshake."""
    broker_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    broker_ctx.load_cert_chain(str(pki["broker"]))
    with KafkaRig(
        brokers=1, cluster_ssl=broker_ctx, upstream_tls={"ca": str(pki["client_ca"])}
    ) as rig:
        host, _, port = rig.bootstrap.rpartition(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(framing.encode_request(18, 3, 1, "t", {}))
            try:
                assert s.recv(65536) == b""  # closed without an answer
            except ConnectionResetError:
                pass
        failures = rig.family("protoproxy_upstream_connect_failures_total")
        assert any(reason.startswith("tls_") for (_u, _e, reason) in failures), failures


def test_sni_routed_kafka_listener_is_counted_not_rewritten(pki: dict[str, Path]) -> None:
    """Routes by SNI and no default upstream: no single cluster to give broker listeners,
    so responses pass untouched, and are still counted."""
    sni = {
        "name": "sni",
        "listen": "127.0.0.1:0",
        "protocol": "kafka",
        "tls": {"cert": str(pki["proxy"]), "key": str(pki["proxy_key"])},
        "routes": [{"sni": "localhost", "upstream": "kafka"}],
    }
    with KafkaRig(brokers=2, extra_listeners=[sni]) as rig:
        assert rig.app is not None and rig.cluster is not None
        port = rig.app.proxy.listeners["sni"].port
        ctx = ssl.create_default_context(cafile=str(pki["client_ca"]))
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost") as s,
        ):
            s.sendall(framing.encode_request(3, 9, 4, "sni", {"topics": []}))
            size = int.from_bytes(s.recv(4), "big")
            payload = b""
            while len(payload) < size:
                payload += s.recv(size - len(payload))
        _, body = framing.decode_response(3, 9, payload)
        real = {srv.address for srv in rig.cluster.servers.values()}
        assert {f"{b.host}:{b.port}" for b in body.brokers} == real
        assert rig.family("protoproxy_kafka_requests_total") == {("sni", "Metadata", "9", "sni"): 1}
        assert "sni" not in rig.component.brokers
