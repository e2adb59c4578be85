"""The gRPC schema a recording uses to write messages as JSON.

Three sources, as ``record.schema`` says: .proto files compiled by
grpcio-tools' protoc (a pure C++ extension that does not load grpc's C-core,
which the proxy process keeps out, see testbed/grpc_process.py), a
FileDescriptorSet file, or the upstream's server reflection, asked in a child
process (`protoproxy.record.reflect`) for the same reason.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError as ProtobufDecodeError

#: Seconds the reflection child may take (it imports grpcio on a loaded machine).
REFLECT_TIMEOUT = 60.0
#: Bytes of FileDescriptorSet the reflection child may send.
MAX_DESCRIPTOR_BYTES = 64 * 1024 * 1024


class SchemaError(ValueError):
    """A schema that could not be loaded: the message names the file or server."""


def compile_protos(protos: list[Path], import_paths: list[Path]) -> bytes:
    """A FileDescriptorSet (imports included) of `protos`, by protoc in-process."""
    from grpc_tools import protoc  # imported here: only recorded listeners with protos pay

    include = Path(protoc.__file__).parent / "_proto"
    paths = [*import_paths, *{p.parent for p in protos}]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.binpb"
        args = [
            "protoc",
            *(f"-I{p}" for p in paths),
            f"-I{include}",
            f"--descriptor_set_out={out}",
            "--include_imports",
            *(str(p) for p in protos),
        ]
        if protoc.main(args) != 0 or not out.exists():
            raise SchemaError(f"protoc could not compile {', '.join(map(str, protos))}")
        return out.read_bytes()


@dataclass(frozen=True, slots=True)
class MethodTypes:
    request: Any  # message class
    response: Any
    client_streaming: bool
    server_streaming: bool


class Schema:
    """A descriptor pool built from one FileDescriptorSet."""

    def __init__(self, data: bytes, source: str) -> None:
        fds = descriptor_pb2.FileDescriptorSet()
        try:
            fds.ParseFromString(data)
        except ProtobufDecodeError as exc:
            raise SchemaError(f"{source}: not a FileDescriptorSet ({exc})") from None
        self.files = {f.name: f for f in fds.file}
        self.pool = descriptor_pool.DescriptorPool()
        try:
            for fdp in _dependency_order(self.files):
                self.pool.Add(fdp)
        except (TypeError, ValueError) as exc:
            raise SchemaError(f"{source}: {exc}") from None
        self._methods: dict[str, MethodTypes | None] = {}

    def method(self, path: str) -> MethodTypes | None:
        """The types of ``/pkg.Svc/Method``; None when the schema does not have it."""
        if path in self._methods:
            return self._methods[path]
        found: MethodTypes | None = None
        service, _, name = path.strip("/").partition("/")
        try:
            m = self.pool.FindServiceByName(service).FindMethodByName(name)
        except KeyError:
            m = None
        if m is not None:
            found = MethodTypes(
                message_factory.GetMessageClass(m.input_type),
                message_factory.GetMessageClass(m.output_type),
                m.client_streaming,
                m.server_streaming,
            )
        if len(self._methods) < 10_000:
            self._methods[path] = found
        return found

    def set_for(self, service: str) -> bytes | None:
        """A FileDescriptorSet of the file declaring `service` and its imports."""
        try:
            fd = self.pool.FindFileContainingSymbol(service)
        except KeyError:
            return None
        out = descriptor_pb2.FileDescriptorSet()
        seen: set[str] = set()

        def add(name: str) -> None:
            if name in seen or name not in self.files:
                return
            seen.add(name)
            for dep in self.files[name].dependency:
                add(dep)
            out.file.append(self.files[name])

        add(fd.name)
        return out.SerializeToString()


def _dependency_order(files: dict[str, descriptor_pb2.FileDescriptorProto]) -> list[Any]:
    ordered: list[Any] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in files:
            return
        seen.add(name)
        for dep in files[name].dependency:
            visit(dep)
        ordered.append(files[name])

    for name in files:
        visit(name)
    return ordered


async def reflect(address: str) -> bytes:
    """The FileDescriptorSet the server at `address` reflects, from a child process."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "protoproxy.record.reflect",
        address,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), REFLECT_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise SchemaError(f"reflection from {address} took over {REFLECT_TIMEOUT:.0f} s") from None
    if proc.returncode != 0:
        raise SchemaError(
            f"reflection from {address} failed: {err.decode(errors='replace').strip()[-500:]}"
        )
    if len(out) > MAX_DESCRIPTOR_BYTES:
        raise SchemaError(f"reflection from {address} sent over {MAX_DESCRIPTOR_BYTES} bytes")
    return out
