"""``DIR/scenario.yaml``: the testbed scenario that replays a recording folder.

Built from what the folder holds (so a folder recorded into twice replays
both runs): one ``grpc.services`` entry per ``grpc/<service>/`` folder with
its ``descriptor_set.binpb`` (a service recorded without a schema is named
in a comment instead, since the fake needs one), one ``http.services``
entry when ``http/mappings/`` exists, and one Kafka topic per
``kafka/<topic>.jsonl``. The first gRPC fake and the HTTP fake listen on the
recording listeners' ports, so clients find the replay where they found the
proxy; ``Scenario.with_ephemeral_ports()`` moves them for tests.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

#: Names the testbed keeps for its own listeners (testbed.scenario.RESERVED_NAMES).
_RESERVED = frozenset({"kafka", "grpc", "http", "echo", "admin"})


def service_name(full: str, taken: set[str]) -> str:
    """A scenario service name (``^[A-Za-z][A-Za-z0-9_-]{0,62}$``) for a gRPC service."""
    name = re.sub(r"[^A-Za-z0-9_-]", "-", full).strip("-") or "service"
    if not name[0].isalpha():
        name = "s-" + name
    name = name[:63]
    if name in _RESERVED:
        name = f"{name}-svc"
    base, n = name, 2
    while name in taken:
        suffix = f"-{n}"
        name = base[: 63 - len(suffix)] + suffix
        n += 1
    taken.add(name)
    return name


def schemaless(root: Path) -> list[str]:
    """Recorded gRPC services with no descriptor set: a scenario needs their schema."""
    grpc_dir = root / "grpc"
    if not grpc_dir.is_dir():
        return []
    return sorted(
        d.name
        for d in grpc_dir.iterdir()
        if d.is_dir() and not (d / "descriptor_set.binpb").is_file()
    )


def build(
    root: Path, listener: str, partitions: dict[str, int], ports: dict[str, int] | None = None
) -> dict[str, Any]:
    """The scenario. `ports` ("grpc", "http"): the recording listeners' ports, which
    the first fake of each kind takes, so clients find the replay where they
    found the proxy (0 when the listener's port was ephemeral)."""
    ports = dict(ports or {})
    taken: set[str] = set()
    grpc_services = []
    grpc_dir = root / "grpc"
    if grpc_dir.is_dir():
        for d in sorted(p for p in grpc_dir.iterdir() if p.is_dir()):
            if not (d / "descriptor_set.binpb").is_file():
                continue  # listed in the file's comment: the user adds protos
            entry: dict[str, Any] = {
                "name": service_name(d.name, taken),
                "port": ports.pop("grpc", 0),
            }
            entry["descriptor_set"] = f"grpc/{d.name}/descriptor_set.binpb"
            entry["stubs"] = [f"grpc/{d.name}/"]
            grpc_services.append(entry)
    scenario: dict[str, Any] = {
        "grpc": {"services": grpc_services} if grpc_services else {"enabled": False},
    }
    if (root / "http" / "mappings").is_dir():
        name = service_name(f"{listener}-http", taken)
        port = ports.get("http", 0)
        scenario["http"] = {
            "services": [{"name": name, "port": port, "mappings": ["http/mappings/"]}]
        }
    else:
        scenario["http"] = {"enabled": False}
    topics = {}
    kafka_dir = root / "kafka"
    if kafka_dir.is_dir():
        for f in sorted(kafka_dir.glob("*.jsonl")):
            topic = f.name[: -len(".jsonl")]
            topics[topic] = {
                "partitions": max(partitions.get(topic, 1), 1),
                "records": f"kafka/{f.name}",
            }
    scenario["kafka"] = {"topics": topics} if topics else {"enabled": False}
    scenario["echo"] = {"enabled": False}
    return scenario


def write(
    root: Path, listener: str, partitions: dict[str, int], ports: dict[str, int] | None = None
) -> None:
    text = (
        f"# Recorded by protoproxy (listener {listener}). Replay it with:\n"
        f"#   protoproxy testbed {(root / 'scenario.yaml').resolve()}\n"
    )
    for name in schemaless(root):
        text += (
            f"# gRPC service {name} was recorded without a schema (base64 stubs in "
            f"grpc/{name}/):\n#   record it again with record.schema set to replay it\n"
        )
    text += yaml.safe_dump(build(root, listener, partitions, ports), sort_keys=False)
    tmp = root / ".scenario.yaml.tmp"
    tmp.write_text(text)
    tmp.replace(root / "scenario.yaml")
