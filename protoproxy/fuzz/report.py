"""The run's report: OUT/report.json, OUT/junit.xml (for CI) and a one-page OUT/report.html."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from .driver import ORACLES
from .replay import options_to_json, protoproxy_version
from .runner import RunResult


def to_json(result: RunResult) -> dict[str, Any]:
    s = result.spec
    by_oracle = {name: 0 for name in ORACLES}
    for f in result.failures:
        by_oracle[f.oracle] = by_oracle.get(f.oracle, 0) + 1
    return {
        "protoproxy": protoproxy_version(),
        "driver": s.driver,
        "target": str(s.target),
        "via": str(result.via),
        "direct": s.direct,
        "seed": s.seed,
        "options": options_to_json(s.options),
        "max_examples": s.max_examples,
        "seconds": s.seconds,
        "cases": result.cases,
        "stateful_cases": result.stateful_cases,
        "elapsed_s": round(result.elapsed_s, 3),
        "cases_per_s": round(result.cases_per_s, 1),
        "responses": result.responses,
        "responses_per_s": round(result.responses_per_s, 1),
        "rounds": result.rounds,
        "coverage": dict(result.coverage.most_common()),
        "slowest": [
            {"label": label, "latency_ms": round(ns / 1e6, 3)} for label, ns in result.slowest()
        ],
        "oracles": {
            name: {"description": ORACLES.get(name, ""), "failures": n}
            for name, n in by_oracle.items()
        },
        "failures": [
            {
                "file": f.file,
                "oracle": f.oracle,
                "detail": f.detail,
                "label": f.case.label,
                "seed": f.seed,
                "stateful": f.stateful,
                "flaky": f.flaky,
            }
            for f in result.failures
        ],
        "proxy": result.proxy,
    }


def junit(result: RunResult) -> ET.Element:
    """One testcase per oracle and one per label covered; a failure of either is a <failure>."""
    data = to_json(result)
    name = f"protoproxy fuzz {data['driver']}"
    suite = ET.Element("testsuite", name=name, time=f"{result.elapsed_s:.3f}")
    tests = failures = 0
    for oracle in data["oracles"]:
        tc = ET.SubElement(
            suite, "testcase", classname=f"fuzz.{data['driver']}.oracle", name=oracle
        )
        tests += 1
        mine = [f for f in data["failures"] if f["oracle"] == oracle]
        if mine:
            failures += 1
            ET.SubElement(
                tc, "failure", message=f"{oracle}: {mine[0]['detail']}", type=oracle
            ).text = "\n".join(f"{f['label']}: {f['detail']} ({f['file']})" for f in mine)
    for label, count in data["coverage"].items():
        tc = ET.SubElement(
            suite,
            "testcase",
            classname=f"fuzz.{data['driver']}.label",
            name=label,
        )
        ET.SubElement(tc, "system-out").text = f"{count} cases"
        tests += 1
        mine = [f for f in data["failures"] if f["label"] == label]
        if mine:
            failures += 1
            ET.SubElement(
                tc, "failure", message=f"{mine[0]['oracle']}: {mine[0]['detail']}", type="oracle"
            ).text = "\n".join(f"{f['oracle']}: {f['detail']} ({f['file']})" for f in mine)
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("skipped", "0")
    root = ET.Element("testsuites", name="protoproxy fuzz", tests=str(tests))
    root.set("failures", str(failures))
    root.append(suite)
    return root


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


_STYLE = (
    "body{font:14px system-ui,sans-serif;margin:2em;max-width:60em}"
    "table{border-collapse:collapse;margin:.5em 0 1.5em}"
    "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}"
    ".bad{color:#b00}.ok{color:#070}"
)


def to_html(result: RunResult) -> str:
    """Self-contained (inline style, no scripts or external assets); every value escaped."""
    d = to_json(result)
    e = html.escape
    verdict = (
        f'<p class="bad">{len(d["failures"])} failure(s)</p>'
        if d["failures"]
        else '<p class="ok">no failures</p>'
    )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>protoproxy fuzz {e(d['driver'])}</title><style>{_STYLE}</style></head><body>",
        f"<h1>protoproxy fuzz {e(d['driver'])} &rarr; {e(d['target'])}</h1>",
        verdict,
        _table(
            ["cases", "cases/s", "elapsed s", "labels", "seed", "via"],
            [
                [
                    d["cases"],
                    d["cases_per_s"],
                    d["elapsed_s"],
                    len(d["coverage"]),
                    d["seed"],
                    "direct" if d["direct"] else f"proxy {d['via']}",
                ]
            ],
        ),
        "<h2>Failures</h2>",
        _table(
            ["oracle", "label", "detail", "replay file"],
            [[f["oracle"], f["label"], f["detail"], f["file"]] for f in d["failures"]],
        ),
        "<h2>Oracles</h2>",
        _table(
            ["oracle", "failures", "checks"],
            [[k, v["failures"], v["description"]] for k, v in d["oracles"].items()],
        ),
        "<h2>Coverage</h2>",
        _table(["label", "cases"], [[k, v] for k, v in d["coverage"].items()]),
        "<h2>Slowest responses</h2>",
        _table(["label", "latency ms"], [[s["label"], s["latency_ms"]] for s in d["slowest"]]),
    ]
    if d["proxy"]:
        parts += [
            "<h2>Proxy counters</h2>",
            _table(["counter", "total"], [[k, v] for k, v in d["proxy"].items()]),
        ]
    parts.append("</body></html>\n")
    return "".join(parts)


def write_reports(out: Path, result: RunResult) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / "report.json",
        "junit": out / "junit.xml",
        "html": out / "report.html",
    }
    paths["json"].write_text(json.dumps(to_json(result), indent=2) + "\n")
    tree = ET.ElementTree(junit(result))
    ET.indent(tree)
    tree.write(paths["junit"], encoding="utf-8", xml_declaration=True)
    paths["html"].write_text(to_html(result))
    return paths
