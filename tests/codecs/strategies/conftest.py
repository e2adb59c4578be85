"""The fixture descriptor set: fixtures/fuzz/*.proto, compiled in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool

PROTOS = Path(__file__).resolve().parents[3] / "fixtures" / "fuzz"


@pytest.fixture(scope="session")
def descriptor_set(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pb2.FileDescriptorSet:
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("desc") / "fuzz.desc"
    names = sorted(p.name for p in PROTOS.glob("*.proto"))
    args = [f"-I{PROTOS}", f"--descriptor_set_out={out}", "--include_imports", *names]
    code = protoc.main(["grpc_tools.protoc", *args])
    assert code == 0, f"protoc failed on {PROTOS}: {names}"
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


@pytest.fixture(scope="session")
def pool(descriptor_set: descriptor_pb2.FileDescriptorSet) -> descriptor_pool.DescriptorPool:
    p = descriptor_pool.DescriptorPool()
    for f in descriptor_set.file:
        p.Add(f)
    return p
