"""The testbed's fake gRPC service, its behaviour program and client helpers.

The names are loaded on first use (PEP 562), not when the package is: the
testbed's own process reaches `testbed.grpc.stats` and `testbed.grpc.names`
(pure Python) without loading grpcio, whose C-core runs in the gRPC service's
child process only (`testbed.grpc_process`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .behaviour import Behaviour, BehaviourError, Plan, status_code
    from .names import METHODS, SERVICE, method_path
    from .service import FakeGrpcService, ServerTls
    from .stats import MethodStats
    from .threaded import ThreadedGrpcService

#: public name -> the submodule that defines it
_WHERE = {
    "Behaviour": "behaviour",
    "BehaviourError": "behaviour",
    "Plan": "behaviour",
    "status_code": "behaviour",
    "METHODS": "names",
    "SERVICE": "names",
    "method_path": "names",
    "FakeGrpcService": "service",
    "ServerTls": "service",
    "MethodStats": "stats",
    "ThreadedGrpcService": "threaded",
}

__all__ = [
    "METHODS",
    "SERVICE",
    "Behaviour",
    "BehaviourError",
    "FakeGrpcService",
    "MethodStats",
    "Plan",
    "ServerTls",
    "ThreadedGrpcService",
    "method_path",
    "status_code",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
