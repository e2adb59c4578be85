"""The fixture descriptor set: fixtures/fuzz/allkinds.proto, compiled in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool

PROTO = Path(__file__).resolve().parents[3] / "fixtures" / "fuzz" / "allkinds.proto"


@pytest.fixture(scope="session")
def descriptor_set(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pb2.FileDescriptorSet:
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("desc") / "allkinds.desc"
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO.parent}",
            f"--descriptor_set_out={out}",
            "--include_imports",
            PROTO.name,
        ]
    )
    assert code == 0, f"protoc failed on {PROTO}"
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


@pytest.fixture(scope="session")
def pool(descriptor_set: descriptor_pb2.FileDescriptorSet) -> descriptor_pool.DescriptorPool:
    p = descriptor_pool.DescriptorPool()
    for f in descriptor_set.file:
        p.Add(f)
    return p
