"""Fixtures for the docs examples: the live testbed, and a working directory per document."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from . import live, runners
from .blocks import ROOT, parse


@pytest.fixture(scope="module")
def docs_testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[live.LiveTestbed]:
    """`protoproxy testbed --access-log` on the default ports, for the docs tests: module
    scope, so the ports are free again for whatever runs after them."""
    tb = live.LiveTestbed(tmp_path_factory.mktemp("docs-testbed"))
    try:
        tb.start()
    except live.PortBusy as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield tb
    finally:
        tb.stop()


@pytest.fixture(scope="session")
def docs_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return runners.shims(tmp_path_factory.mktemp("docs-bin"))


@pytest.fixture(scope="session")
def docs_workdirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {}


@pytest.fixture
def doc_workdir(
    request: pytest.FixtureRequest,
    docs_workdirs: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """Where one document's sh blocks run: its `file=` blocks are written there first."""
    path: str = request.node.callspec.params["block"].path
    if path not in docs_workdirs:
        workdir = tmp_path_factory.mktemp("docs-" + path.replace("/", "-"))
        # Examples name the repository's fixtures as from its root, where a user runs them.
        (workdir / "fixtures").symlink_to(ROOT / "fixtures", target_is_directory=True)
        for block in parse(ROOT / path):
            name = block.opts.get("file")
            if name:
                (workdir / name).write_text(block.code)
                if block.lang == "yaml":
                    runners.tls_files(yaml.safe_load(block.code), workdir)
        docs_workdirs[path] = workdir
    return docs_workdirs[path]
