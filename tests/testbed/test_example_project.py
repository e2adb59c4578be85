"""The `protoproxy_testbed` fixture as a user meets it: in a project of their own.

Each test runs `python -m pytest` in a subprocess, in a temporary directory
outside this repository, so nothing of this suite's configuration applies
(its pyproject sets asyncio_mode=auto). The plugin is loaded only through the
installed `pytest11` entry point; PYTHONPATH (inherited) points at this tree.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "testbed-project"
#: fakes of a project's own services: a .proto with GripMock stubs, WireMock
#: mappings and Kafka seeds, through the testbed/grpc_fake/http_fake/kafka_fake fixtures
SHOP_EXAMPLE = ROOT / "docs" / "examples" / "shop-project"
RUN_TIMEOUT = 600  # seconds for a whole subprocess run: a hang fails, not a slow machine


def run_pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    for var in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        env.pop(var, None)
    for var in [v for v in env if v.startswith("PYTEST_XDIST_")]:
        env.pop(var)  # a worker's own marks: the child is a plain pytest run
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )


def passed_all(result: subprocess.CompletedProcess[str], expected: int) -> None:
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert re.search(rf"\b{expected} passed\b", out), out
    # (kafka-python's own DeprecationWarnings may show in the summary: not ours)
    assert not re.search(r"\b(failed|error|errors|skipped)\b", out.splitlines()[-1]), out


@pytest.mark.parametrize("example", [EXAMPLE, SHOP_EXAMPLE], ids=lambda p: p.name)
def test_the_documented_example_project_passes_as_is(tmp_path: Path, example: Path) -> None:
    project = tmp_path / example.name
    shutil.copytree(example, project)
    result = run_pytest(project)
    out = result.stdout + result.stderr
    # what the user runs: pytest-asyncio's default mode, our plugin by entry point
    assert "asyncio: mode=Mode.STRICT" in out, out
    assert re.search(r"plugins:.*\bprotoproxy-", out), out
    collected = re.search(r"collected (\d+) items", out)
    assert collected is not None, out
    passed_all(result, int(collected.group(1)))


SCENARIO = """\
kafka: {enabled: false}
grpc: {enabled: false}
http: {enabled: false}
"""

SYNC_TESTS = """\
import socket

import pytest

pytestmark = pytest.mark.protoproxy_scenario("scenarios/echo.yaml")


def roundtrip(address, data):
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        return s.makefile("rb").read()


def test_sync(protoproxy_testbed):
    assert set(protoproxy_testbed.addresses) == {"admin", "echo"}
    cut = {"type": "limit_data", "attributes": {"bytes": 2}}
    with protoproxy_testbed.faults.applied(name="cut", match={"listener": "echo"}, toxic=cut):
        assert roundtrip(protoproxy_testbed.echo_address, b"hello") == b"he"
    assert roundtrip(protoproxy_testbed.echo_address, b"hello") == b"hello"
"""

ASYNC_TESTS = """\
import asyncio

import pytest

pytestmark = pytest.mark.protoproxy_scenario("scenarios/echo.yaml")


async def roundtrip(address, data):
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(data)
    writer.write_eof()
    answer = await reader.read()
    writer.close()
    return answer


@pytest.mark.asyncio
async def test_marked_async(protoproxy_testbed):
    tb = protoproxy_testbed
    cut = {"type": "limit_data", "attributes": {"bytes": 3}}
    async with tb.async_faults.applied(name="cut", match={"listener": "echo"}, toxic=cut):
        assert await roundtrip(tb.echo_address, b"hello") == b"hel"
    assert tb.admin.faults() == []
"""

UNMARKED_ASYNC_TEST = """

async def test_unmarked_async(protoproxy_testbed):
    assert await roundtrip(protoproxy_testbed.echo_address, b"auto") == b"auto"
"""


def user_project(root: Path, *, asyncio_tests: str | None) -> Path:
    """A project whose tests sit below the directory pytest runs in, so that a
    scenario path relative to the test file differs from one relative to the cwd."""
    tests = root / "tests" / "unit"
    (tests / "scenarios").mkdir(parents=True)
    (tests / "scenarios" / "echo.yaml").write_text(SCENARIO)
    (tests / "test_sync.py").write_text(SYNC_TESTS)
    if asyncio_tests is not None:
        (tests / "test_async.py").write_text(asyncio_tests)
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            """\
            [tool.pytest.ini_options]
            testpaths = ["tests"]
            """
        )
    )
    return root


@pytest.mark.parametrize(
    ("mode", "args", "tests", "expected"),
    [
        ("strict", [], ASYNC_TESTS, 2),
        ("auto", ["-o", "asyncio_mode=auto"], ASYNC_TESTS + UNMARKED_ASYNC_TEST, 3),
        ("without-pytest-asyncio", ["-p", "no:asyncio"], None, 1),
    ],
    ids=["strict", "auto", "without-pytest-asyncio"],
)
def test_the_fixture_needs_no_configuration(
    tmp_path: Path, mode: str, args: list[str], tests: str | None, expected: int
) -> None:
    project = user_project(tmp_path / mode, asyncio_tests=tests)
    # --strict-markers and pytest's warnings as errors: the marker is registered, and
    # the fixture draws no deprecation (pytest's "async fixture in a sync test" one)
    result = run_pytest(
        project,
        "-p",
        "no:cacheprovider",
        "--strict-markers",
        "-W",
        "error::pytest.PytestWarning",
        # pytest-asyncio 0.24-0.26 warn about their own unset loop-scope option in
        # any project that leaves it out: a user's config matter, not the fixture's
        "-W",
        "ignore:The configuration option:pytest.PytestDeprecationWarning:pytest_asyncio.plugin",
        *args,
    )
    passed_all(result, expected)


def test_the_code_quoted_in_docs_testbed_md_is_the_example_projects() -> None:
    """docs/testbed.md quotes the example's scenario and fault test: the quotes must
    be the files' own text, so the page shows what test_example_project runs."""
    doc = (ROOT / "docs" / "testbed.md").read_text()
    scenario = (EXAMPLE / "tests" / "scenario.yaml").read_text()
    tests = (EXAMPLE / "tests" / "test_payments.py").read_text()
    blocks = re.findall(r"^```(\w+)[^\n]*\n(.*?)^```$", doc, re.S | re.M)
    quoted_tests = [
        code for lang, code in blocks if lang == "python" and "tb.admin.add_fault" in code
    ]
    quoted_scenario = [code for lang, code in blocks if lang == "yaml" and "payments: 1" in code]
    assert quoted_tests and quoted_scenario
    assert all(code in tests for code in quoted_tests)
    assert all(code in scenario for code in quoted_scenario)
