"""The testbed's fake gRPC service, its behaviour program and client helpers."""

from __future__ import annotations

from .behaviour import Behaviour, BehaviourError, Plan, status_code
from .names import METHODS, SERVICE, method_path
from .service import FakeGrpcService, ServerTls
from .stats import MethodStats
from .threaded import ThreadedGrpcService

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
