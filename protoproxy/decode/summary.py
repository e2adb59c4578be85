"""`--summary`: counts and latency percentiles per (protocol, operation)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import IO, Any


def _pct(sorted_values: list[float], q: float) -> float:
    i = min(int(q * len(sorted_values)), len(sorted_values) - 1)
    return sorted_values[i]


def summarise(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    by: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        by[(r["protocol"], r["operation"])].append(r["duration"] or 0.0)
    out = []
    for (proto, op), ds in sorted(by.items()):
        ds.sort()
        out.append({"protocol": proto, "operation": op, "count": len(ds),
                    "p50": _pct(ds, 0.5), "p90": _pct(ds, 0.9), "p99": _pct(ds, 0.99)})  # fmt: skip
    return out


def write(rows: Iterable[dict[str, Any]], out: IO[str]) -> None:
    for s in summarise(rows):
        out.write(
            f"{s['protocol']:<6} {s['operation']:<32} n={s['count']:<6} "
            f"p50={s['p50'] * 1e3:.3f}ms p90={s['p90'] * 1e3:.3f}ms p99={s['p99'] * 1e3:.3f}ms\n"
        )
