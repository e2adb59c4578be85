"""The schema of one fake gRPC service: descriptors, message classes, methods.

A user gives their .proto files, a FileDescriptorSet, or a real server to
reflect from; all three end as one FileDescriptorSet loaded into a private
`DescriptorPool`, one per fake, so two fakes with clashing type names (two
versions of ``shop.v1``) never meet, and the process's default pool (where
the testbed's own TestService and google.rpc live) stays untouched.

The .proto files are compiled by grpcio-tools' protoc in this process, all of
a fake's files in ONE invocation (protoc parses each import once): twenty
files take tens of milliseconds, which is what keeps a testbed's start-up
under the issue's two seconds.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import FileDescriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message

CallKind = Literal["unary", "server_stream", "client_stream", "bidi"]

#: Services a real server's reflection lists that are not the user's own.
INFRASTRUCTURE_SERVICES = frozenset(
    {
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
        "grpc.health.v1.Health",
    }
)
#: Seconds for each reflection request to a real server.
REFLECTION_TIMEOUT = 10.0
#: The most files taken from one server's reflection (a bound on what it sends).
MAX_REFLECTED_FILES = 10_000


class SchemaError(ValueError):
    """A schema that cannot be built; the message names the file or server."""


@dataclass(frozen=True, slots=True)
class Method:
    """One RPC of a user's service, with the classes that (de)serialise it."""

    #: "pkg.Service/Method", the journal's and the stub engine's name
    path: str
    kind: CallKind
    input: type[Message]
    output: type[Message]

    @property
    def service(self) -> str:
        return self.path.partition("/")[0]

    @property
    def name(self) -> str:
        return self.path.partition("/")[2]


def _kind(method: MethodDescriptor) -> CallKind:
    client, server = method.client_streaming, method.server_streaming
    if client and server:
        return "bidi"
    if client:
        return "client_stream"
    return "server_stream" if server else "unary"


class Schema:
    """Every service defined in a FileDescriptorSet, in a pool of its own."""

    def __init__(self, files: descriptor_pb2.FileDescriptorSet, source: str) -> None:
        self.source = source
        self.files = files
        self.pool = descriptor_pool.DescriptorPool()
        for proto in _dependency_order(files.file, source):
            try:
                self.pool.Add(proto)
            except (TypeError, ValueError) as exc:  # a conflicting or broken file
                raise SchemaError(f"{source}: {proto.name}: {exc}") from None
        self.services: dict[str, ServiceDescriptor] = {}
        self.methods: dict[str, Method] = {}
        for proto in files.file:
            fd = self.pool.FindFileByName(proto.name)
            for service in fd.services_by_name.values():
                if service.full_name in INFRASTRUCTURE_SERVICES:
                    continue
                self.services[service.full_name] = service
                for m in service.methods:
                    path = f"{service.full_name}/{m.name}"
                    self.methods[path] = Method(
                        path,
                        _kind(m),
                        message_factory.GetMessageClass(m.input_type),
                        message_factory.GetMessageClass(m.output_type),
                    )
        if not self.services:
            raise SchemaError(f"{source}: defines no service")

    def add_file_of(self, fd: FileDescriptor) -> None:
        """Add a file of the default pool (and its imports) unless this pool has it:
        google.rpc's error details (to parse rich errors) and the health service
        (so reflection can describe it)."""
        for dep in fd.dependencies:
            self.add_file_of(dep)
        try:
            self.pool.FindFileByName(fd.name)
        except KeyError:
            self.pool.AddSerializedFile(fd.serialized_pb)

    def find_method(self, service: str, method: str) -> Method | None:
        """A method by GripMock's names: the service's full name or its last part."""
        found = self.methods.get(f"{service}/{method}")
        if found is not None:
            return found
        for path, m in self.methods.items():
            svc = m.service
            if m.name == method and (svc.rpartition(".")[2] == service or svc == service):
                return self.methods[path]
        return None


def _dependency_order(
    files: Iterable[descriptor_pb2.FileDescriptorProto], source: str
) -> Iterator[descriptor_pb2.FileDescriptorProto]:
    """Files with every import before its importer, as a pool needs them added."""
    by_name = {f.name: f for f in files}
    done: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> Iterator[descriptor_pb2.FileDescriptorProto]:
        if name in done:
            return
        if name in chain:
            raise SchemaError(f"{source}: import cycle {' -> '.join((*chain, name))}")
        proto = by_name.get(name)
        if proto is None:
            raise SchemaError(
                f"{source}: {chain[-1]} imports {name}, which the descriptor set lacks "
                "(build it with protoc --include_imports)"
            )
        for dep in proto.dependency:
            yield from visit(dep, (*chain, name))
        done.add(name)
        yield proto

    for name in by_name:
        yield from visit(name, ())


# -- the three sources ----------------------------------------------------------------


def _well_known_protos() -> Path:
    import grpc_tools

    return Path(grpc_tools.__file__).resolve().parent / "_proto"


def from_protos(protos: list[Path], import_paths: list[Path]) -> Schema:
    """Compile `protos` with protoc (in this process) into a schema."""
    from grpc_tools import protoc

    for p in protos:
        if not p.is_file():
            raise SchemaError(f"{p}: no such .proto file")
    includes: list[Path] = []
    for d in [*import_paths, *(p.resolve().parent for p in protos)]:
        d = d.resolve()
        if d not in includes:
            includes.append(d)
    with tempfile.TemporaryDirectory(prefix="protoproxy-protoc-") as tmp:
        out = Path(tmp) / "set.desc"
        errors = Path(tmp) / "stderr"
        argv = [
            "grpc_tools.protoc",
            *(f"-I{d}" for d in includes),
            f"-I{_well_known_protos()}",
            f"--descriptor_set_out={out}",
            "--include_imports",
            *(str(p.resolve()) for p in protos),
        ]
        with _stderr_to(errors):
            code = protoc.main(argv)
        if code != 0:
            message = errors.read_text(errors="replace").strip() or f"protoc exit status {code}"
            names = ", ".join(str(p) for p in protos)
            raise SchemaError(f"protoc could not compile {names}:\n{message}")
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    return Schema(files, ", ".join(str(p) for p in protos))


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """protoc is C++ and writes its errors to file descriptor 2: catch them there."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with path.open("wb") as f:
            os.dup2(f.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def from_descriptor_set(path: Path) -> Schema:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SchemaError(f"{path}: {exc.strerror or exc}") from None
    try:
        files = descriptor_pb2.FileDescriptorSet.FromString(data)
    except DecodeError as exc:
        raise SchemaError(f"{path}: not a FileDescriptorSet: {exc}") from None
    return Schema(files, str(path))


def from_reflection(address: str) -> Schema:
    """The schema a real server's reflection service (v1alpha) gives for every
    service it lists, imports included. Blocking: call before serving."""
    import grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}

    def ask(channel: grpc.Channel, **request: Any) -> Any:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(**request)]), timeout=REFLECTION_TIMEOUT
        )
        reply = next(iter(replies))
        if reply.HasField("error_response"):
            err = reply.error_response
            raise SchemaError(f"reflection at {address}: {request}: {err.error_message}")
        return reply

    def take(reply: Any) -> None:
        for raw in reply.file_descriptor_response.file_descriptor_proto:
            proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
            files.setdefault(proto.name, proto)
            if len(files) > MAX_REFLECTED_FILES:
                raise SchemaError(f"reflection at {address}: more than {MAX_REFLECTED_FILES} files")

    try:
        with grpc.insecure_channel(address) as channel:
            listed = ask(channel, list_services="")
            names = [s.name for s in listed.list_services_response.service]
            for name in names:
                if name not in INFRASTRUCTURE_SERVICES:
                    take(ask(channel, file_containing_symbol=name))
            missing = _missing_imports(files)
            while missing:
                for name in missing:
                    take(ask(channel, file_by_filename=name))
                missing = _missing_imports(files)
    except grpc.RpcError as exc:
        raise SchemaError(f"reflection at {address}: {exc.code().name}: {exc.details()}") from None
    result = descriptor_pb2.FileDescriptorSet(file=list(files.values()))
    return Schema(result, f"reflection at {address}")


def _missing_imports(files: dict[str, descriptor_pb2.FileDescriptorProto]) -> list[str]:
    return sorted({d for f in files.values() for d in f.dependency if d not in files})


def load(config: dict[str, Any]) -> Schema:
    """The schema a scenario's service entry names (JSON form of GrpcServiceScenario)."""
    if config.get("protos"):
        return from_protos(
            [Path(p) for p in config["protos"]], [Path(p) for p in config.get("import_paths", [])]
        )
    if config.get("descriptor_set"):
        return from_descriptor_set(Path(config["descriptor_set"]))
    if config.get("reflect_from"):
        return from_reflection(str(config["reflect_from"]))
    raise SchemaError(f"service {config.get('name')!r}: no protos, descriptor_set or reflect_from")
