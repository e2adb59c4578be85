"""``python -m protoproxy.record.reflect HOST:PORT``: a server's schema on stdout.

Runs grpcio (C-core) in its own process so the proxy never loads it; writes
one serialized FileDescriptorSet of every service the server reflects (but
the reflection and health services themselves), imports included.
"""

from __future__ import annotations

import sys

#: Files one server may make us fetch.
MAX_FILES = 10_000


def fetch(address: str) -> bytes:
    import grpc
    from google.protobuf import descriptor_pb2
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    with grpc.insecure_channel(address) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        out = descriptor_pb2.FileDescriptorSet()
        seen: set[str] = set()

        def add(fdp: descriptor_pb2.FileDescriptorProto) -> None:
            if fdp.name in seen or len(seen) >= MAX_FILES:
                return
            seen.add(fdp.name)
            for dep in fdp.dependency:
                add(db.FindFileByName(dep))
            out.file.append(fdp)

        for service in db.get_services():
            if service.startswith("grpc.reflection.") or service == "grpc.health.v1.Health":
                continue
            add(db.FindFileContainingSymbol(service))
        return out.SerializeToString()


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python -m protoproxy.record.reflect HOST:PORT", file=sys.stderr)
        return 2
    sys.stdout.buffer.write(fetch(sys.argv[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
