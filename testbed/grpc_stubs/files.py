"""Reading stub files: GripMock's YAML and JSON, one stub or a list per file.

Files come from the user's scenario, so everything is bounded (size, YAML
alias expansion) and every failure is a StubError naming the file and where.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from testbed.grpc_stubs.reply import StubError

#: Largest stub file read.
MAX_FILE_BYTES = 16 << 20
#: Most values (counting every alias use) one file may expand to: a YAML alias
#: "billion laughs" file is refused instead of walked.
MAX_NODES = 2_000_000
#: Most files one load reads.
MAX_FILES = 10_000
SUFFIXES = (".json", ".yaml", ".yml")


def stub_files(paths: Iterable[Path]) -> list[Path]:
    """The stub files named, folders searched recursively (sorted, so loads repeat)."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()
            )
            out.extend(found)
        elif path.is_file():
            out.append(path)
        else:
            raise StubError(f"{path}: no such stub file or folder")
        if len(out) > MAX_FILES:
            raise StubError(f"{path}: more than {MAX_FILES} stub files")
    return out


def _count(value: Any, where: str) -> None:
    seen = 0
    stack = [value]
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise StubError(f"{where}: more than {MAX_NODES} values (YAML aliases expand too far?)")
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


#: libyaml's safe loader when PyYAML was built with it: a start with 200 stub
#: files spent most of its time in the pure-Python parser (about 2x slower)
_SAFE_LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_text(text: str, name: str) -> list[Any]:
    """The documents of a file: JSON when it is named .json, else YAML (which reads JSON too)."""
    if name.lower().endswith(".json"):
        try:
            return [json.loads(text)]
        except json.JSONDecodeError as e:
            raise StubError(f"{name}: line {e.lineno} column {e.colno}: bad JSON: {e.msg}") from e
        except RecursionError as e:
            raise StubError(f"{name}: JSON nested too deeply") from e
    try:
        return [d for d in yaml.load_all(text, Loader=_SAFE_LOADER) if d is not None]
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        at = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
        raise StubError(f"{name}: {at}bad YAML: {e.problem or e}") from e
    except yaml.YAMLError as e:
        raise StubError(f"{name}: bad YAML: {e}") from e
    except RecursionError as e:
        raise StubError(f"{name}: YAML nested too deeply") from e


def stubs_in(docs: list[Any], name: str) -> Iterator[tuple[str, Any]]:
    """(path inside the file, stub) for each stub: ``[2]`` in a list, the root for one stub."""
    for d, doc in enumerate(docs):
        _count(doc, name)
        prefix = f"(document {d + 1})" if len(docs) > 1 else ""
        if isinstance(doc, list):
            for i, item in enumerate(doc):
                yield f"{prefix}[{i}]", item
        elif isinstance(doc, dict):
            yield prefix, doc
        else:
            raise StubError(
                f"{name}: {prefix or 'top level'}: want a stub object or a list of stubs, "
                f"got {type(doc).__name__}"
            )


def read_stub_file(path: Path) -> list[tuple[str, Any]]:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise StubError(
                f"{path}: {size} bytes, more than the {MAX_FILE_BYTES} a stub file may have"
            )
        data = path.read_bytes()[: MAX_FILE_BYTES + 1]
    except OSError as e:
        raise StubError(f"{path}: cannot read: {e.strerror or e}") from e
    if len(data) > MAX_FILE_BYTES:
        raise StubError(f"{path}: more than the {MAX_FILE_BYTES} bytes a stub file may have")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise StubError(f"{path}: not UTF-8 text (byte {e.start})") from e
    return list(stubs_in(parse_text(text, str(path)), str(path)))
