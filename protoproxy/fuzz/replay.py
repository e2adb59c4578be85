"""Replay files: one failure, minimal, as JSON that rebuilds its driver and re-sends its case.

A file holds everything `--replay` needs without the original command line:
the driver (registry name and ``module:Class``), its `Options`, the target,
whether the proxy was in front, and the case (`Case.to_json`: wire bytes as
hex plus the decoded form a reader can follow).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .driver import ORACLES, Case, Options

FORMAT = "protoproxy-fuzz-replay/1"


def protoproxy_version() -> str:
    try:
        return version("protoproxy")
    except PackageNotFoundError:
        return "unknown"


def options_to_json(options: Options) -> dict[str, Any]:
    data = asdict(options)
    data["allow_status"] = sorted(options.allow_status)
    for key in ("api", "proto", "import_paths"):
        data[key] = list(data[key])
    return data


def options_from_json(data: dict[str, Any]) -> Options:
    known = Options.__dataclass_fields__
    kwargs = {k: v for k, v in data.items() if k in known}
    kwargs["allow_status"] = frozenset(kwargs.get("allow_status") or ())
    for key in ("api", "proto", "import_paths"):
        kwargs[key] = tuple(kwargs.get(key) or ())
    return Options(**kwargs)


@dataclass
class Failure:
    """One failure as found: what the report lists and the replay file holds."""

    driver: str
    driver_spec: str
    listener_protocol: str
    target: str
    direct: bool
    options: Options
    seed: int
    oracle: str
    detail: str
    case: Case
    stateful: bool = False
    flaky: bool = False
    found_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    file: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "protoproxy": protoproxy_version(),
            "driver": self.driver,
            "driver_spec": self.driver_spec,
            "listener_protocol": self.listener_protocol,
            "target": self.target,
            "direct": self.direct,
            "options": options_to_json(self.options),
            "seed": self.seed,
            "oracle": self.oracle,
            "oracle_description": ORACLES.get(self.oracle, ""),
            "detail": self.detail,
            "stateful": self.stateful,
            "flaky": self.flaky,
            "found_at": self.found_at,
            "case": self.case.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Failure:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a replay file (format {data.get('format')!r}, want {FORMAT})")
        return cls(
            driver=data["driver"],
            driver_spec=data["driver_spec"],
            listener_protocol=data["listener_protocol"],
            target=data["target"],
            direct=bool(data.get("direct")),
            options=options_from_json(data.get("options") or {}),
            seed=int(data.get("seed") or 0),
            oracle=data["oracle"],
            detail=data.get("detail", ""),
            case=Case.from_json(data["case"]),
            stateful=bool(data.get("stateful")),
            flaky=bool(data.get("flaky")),
            found_at=data.get("found_at", ""),
        )


def write_failure(out: Path, failure: Failure) -> Path:
    """Write the next free OUT/failures/NNNN.json and return its path."""
    folder = out / "failures"
    folder.mkdir(parents=True, exist_ok=True)
    n = 1
    while (folder / f"{n:04d}.json").exists():
        n += 1
    path = folder / f"{n:04d}.json"
    path.write_text(json.dumps(failure.to_json(), indent=2) + "\n")
    failure.file = str(path)
    return path


def read_failure(path: Path) -> Failure:
    return Failure.from_json(json.loads(path.read_text()))
