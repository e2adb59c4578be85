"""Regenerate the testbed's protobuf modules and descriptor set.

Run ``python -m testbed.grpc.gen_protos`` (or this file) after editing
``fixtures/protos/*.proto``; the outputs are committed so that nobody needs
grpcio-tools at run time.

protoc writes ``import testbed_pb2`` into the ``*_pb2_grpc.py`` files, which only
works with the output directory on sys.path. We rewrite those imports to be
package-relative so the modules load from the installed ``testbed`` package.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "fixtures" / "protos"
OUT_DIR = Path(__file__).resolve().parent / "protos"
DESCRIPTOR_SET = PROTO_DIR / "testbed.desc"

_ABSOLUTE_IMPORT = re.compile(r"^import (\w+_pb2) as (\w+)$", re.MULTILINE)


def _protoc(args: list[str]) -> None:
    from grpc_tools import protoc  # build-time only dependency

    include = Path(protoc.__file__).resolve().parent / "_proto"
    code = protoc.main(["grpc_tools.protoc", f"-I{PROTO_DIR}", f"-I{include}", *args])
    if code != 0:
        raise SystemExit(f"protoc failed ({code}) for {args}")


def _make_relative(path: Path, local: set[str]) -> None:
    text = path.read_text()

    def fix(match: re.Match[str]) -> str:
        module, alias = match.group(1), match.group(2)
        if module not in local:
            return match.group(0)
        return f"from . import {module} as {alias}"

    path.write_text(_ABSOLUTE_IMPORT.sub(fix, text))


def generate(out_dir: Path = OUT_DIR, descriptor_set: Path = DESCRIPTOR_SET) -> list[str]:
    """Write the modules to `out_dir` and the descriptor set; returns the .proto names.

    The paths are parameters so a test can regenerate into a temporary
    directory and check that the committed files are current.
    """
    protos = sorted(p.name for p in PROTO_DIR.glob("*.proto"))
    if not protos:
        raise SystemExit(f"no .proto files in {PROTO_DIR}")
    out_dir.mkdir(parents=True, exist_ok=True)
    _protoc(
        [
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            *protos,
        ]
    )
    _protoc([f"--descriptor_set_out={descriptor_set}", "--include_imports", *protos])
    local = {Path(p).stem + "_pb2" for p in protos}
    for generated in out_dir.glob("*_pb2*.py"):
        _make_relative(generated, local)
    init = out_dir / "__init__.py"
    if not init.exists():
        init.write_text('"""Generated protobuf modules; regenerate with gen_protos.py."""\n')
    return protos


def main() -> int:
    protos = generate()
    print(f"generated {', '.join(protos)} -> {OUT_DIR.relative_to(ROOT)}, {DESCRIPTOR_SET.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
