"""The harness's own rules: output patterns, JSON shapes, and how blocks are found."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import blocks
from .expect import mismatch
from .shape import differences


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        ("a\nb", "a\nb\n\n"),
        ("x ... z", "x anything at all z"),
        ("...\nlast", "one\ntwo\nlast"),
        ("first\n...", "first"),
        ("{{>=0.5}}s", "0.5s"),
        ("{{>=0.5}}s", "12.25s"),
        ("id {{\\d+}}", "id 42"),
        ('{"a": {{[1-9]\\d*}}}', '{"a": 3}'),
    ],
)
def test_output_matches(expected: str, actual: str) -> None:
    assert mismatch(expected, actual) is None


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        ("a\nb", "a\nc"),
        ("a", "a\nextra"),
        ("x ... z", "x y"),
        ("{{>=0.5}}s", "0.49s"),
        ("{{>=0.5}}s", "fast"),
        ("id {{\\d+}}", "id x"),
        ("...\nlast", "one\ntwo"),
    ],
)
def test_output_mismatches(expected: str, actual: str) -> None:
    assert mismatch(expected, actual) is not None


def test_shape_keys_and_kinds() -> None:
    live = {"count": 2, "rows": [{"id": 1, "name": "a"}, {"id": 2, "name": "b", "x": None}]}
    assert differences({"count": 1, "rows": [{"id": 7, "name": "z"}]}, live) == []
    assert differences({"count": "1"}, live)  # a string where the live value is a number
    assert differences({"rows": [{"id": 1, "colour": "red"}]}, live)  # a key nobody serves


def test_shape_maps_and_empties() -> None:
    # keys that are data: none shared, or status names with counts
    assert differences({"orders": {"0": 1}}, {"payments": {"3": 2}}) == []
    assert differences({"OK": 11, "UNAVAILABLE": 1}, {"OK": 3}) == []
    assert differences({"OK": "x"}, {"OK": 3})
    # nothing live to compare with
    assert differences({"refused": 1}, {}) == []
    assert differences({"rows": [{"id": 1}]}, {"rows": []}) == []


def test_blocks_markers_and_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blocks, "ROOT", tmp_path)
    page = tmp_path / "page.md"
    page.write_text(
        "```sh\necho hi\n```\n\n```output exit=0\nhi\n```\n\n"
        "<!-- docs: no-run (needs your own broker) -->\n```yaml config file=my.yaml\na: 1\n```\n\n"
        "```\nuntagged\n```\n\n```text\nlog line\n```\n\n```output\norphan\n```\n"
    )
    found = blocks.parse(page)
    sh, out, yml, untagged, text, orphan = found
    assert sh.output is out and out.opts == {"exit": "0"} and sh.line == 1
    assert yml.no_run == "needs your own broker" and yml.words == ["config"]
    assert yml.opts == {"file": "my.yaml"}
    problems = blocks.problems(found)
    assert [p.split(":")[1] for p in problems] == [str(untagged.line), str(orphan.line)]
    assert not any(str(text.line) == p.split(":")[1] for p in problems)
