"""Every sh, yaml, json and python block of README.md and docs/*.md, run or checked.

One test per block, named ``FILE:LINE``. The conventions are in tests/docs/README.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tools import require_tool

from . import live, runners
from .blocks import Block, all_blocks, examples, problems
from .pending import reason as pending_reason

#: Traffic of every kind, so that documented responses have live data to compare with.
WARM_UP = """\
seq 1 10 | kcat -b 127.0.0.1:19092 -P -t orders
kcat -b 127.0.0.1:19092 -C -G docs-warm-up -e -q orders > /dev/null
python -m testbed.grpc.call 127.0.0.1:15051 Unary > /dev/null
curl -s 127.0.0.1:18080/echo -H 'authorization: Bearer x' > /dev/null
"""


def _params() -> list[object]:
    out = []
    for block in examples():
        marks = []
        if block.no_run is not None:
            marks.append(pytest.mark.skip(reason=f"docs: no-run ({block.no_run})"))
        why = pending_reason(block)
        if why:
            marks.append(pytest.mark.xfail(strict=True, reason=why))
        out.append(pytest.param(block, id=block.id, marks=marks))
    return out


def test_every_block_is_run_or_marked() -> None:
    """A new block must be tagged with what it is; an untagged or unknown one fails here."""
    found = problems(all_blocks())
    assert not found, "\n".join(found)


@pytest.fixture(scope="module")
def docs_traffic(docs_testbed: live.LiveTestbed, docs_bin: Path, tmp_path_factory) -> None:
    block = Block("tests/docs/test_examples.py", 0, "sh", [], {}, WARM_UP)
    runners.run_sh(block, tmp_path_factory.mktemp("docs-warm-up"), docs_bin)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("block", _params())
def test_example(
    block: Block, request: pytest.FixtureRequest, doc_workdir: Path, docs_bin: Path
) -> None:
    for tool in ("kcat", "curl"):
        if runners.uses(block, tool):
            require_tool(tool)
    if block.lang == "sh":
        testbed: live.LiveTestbed = request.getfixturevalue("docs_testbed")
        if runners.is_testbed_start(block):
            if block.output is not None:
                runners.check_output(block, testbed.banner())
            return
        live.reset()
        runners.run_sh(block, doc_workdir, docs_bin)
    elif block.lang == "yaml":
        runners.run_yaml(block, doc_workdir, docs_bin)
    elif block.lang == "json":
        testbed = None
        if runners.json_needs_testbed(block):
            require_tool("kcat")
            require_tool("curl")
            testbed = request.getfixturevalue("docs_testbed")
            request.getfixturevalue("docs_traffic")
        runners.run_json(block, testbed)
    elif block.lang == "python":
        request.getfixturevalue("docs_testbed")
        live.reset()
        runners.run_python(block, doc_workdir, docs_bin)
