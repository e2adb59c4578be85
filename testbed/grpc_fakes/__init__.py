"""Fakes of the user's own gRPC services, from their .proto files and GripMock stubs.

`schema` turns protos, a descriptor set or a server's reflection into message
classes; `server` serves them on grpcio with the stub engine's answers;
`fakes` holds a scenario's set; `child` and `process` run that set out of the
proxy's process; `handle` and `routes` are the live control. Nothing is
imported here: the testbed's process reaches `process`, `handle` and `routes`
without loading grpcio.
"""
