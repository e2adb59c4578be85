"""Per-method call counters of the fake service.

They mirror what the proxy counts for a gRPC Exchange (calls, statuses,
messages and payload bytes each way), so a test can set one beside the other.
Bytes are protobuf payload bytes, without gRPC's 5-byte message prefix.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class MethodStats:
    started: int = 0
    finished: int = 0
    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    # status name ("OK", "UNAVAILABLE", "CANCELLED"...) -> calls that ended so
    statuses: Counter[str] = field(default_factory=Counter)

    @property
    def active(self) -> int:
        return self.started - self.finished

    def as_dict(self) -> dict[str, object]:
        return {
            "started": self.started,
            "finished": self.finished,
            "active": self.active,
            "messages_in": self.messages_in,
            "messages_out": self.messages_out,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "statuses": dict(self.statuses),
        }
