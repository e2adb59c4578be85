"""How each kind of block is run or checked. The conventions are in tests/docs/README.md."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import yaml

from protoproxy.config import Config
from protoproxy.faults.model import FaultSpec, Toxic
from testbed.faults import TestbedFaults
from testbed.scenario import Scenario, load_scenario

from . import live
from .blocks import ROOT, Block
from .expect import mismatch
from .shape import differences

#: Bounds for one block; an example that streams must bound itself (curl --max-time).
SH_TIMEOUT = 60.0
PYTHON_TIMEOUT = 60.0

#: Run before every sh block: stop at the first failing command and say which.
#: curl's exit 28 after its own --max-time is how a streaming example ends, not a failure.
SH_PRELUDE = r"""set -o pipefail
trap '_rc=$?; if [ "$_rc" = 28 ] && [[ $BASH_COMMAND == *curl*--max-time* ]]; then :; else
  printf "exit %s from: %s\n" "$_rc" "$BASH_COMMAND" > "$DOCS_FAILED"; exit "$_rc"; fi' ERR
"""


class DocsFailure(AssertionError):
    pass


def fail(block: Block, message: str) -> None:
    raise DocsFailure(f"{block.id}: {message}")


# -- sh ------------------------------------------------------------------------------


def is_testbed_start(block: Block) -> bool:
    """The block that starts the testbed: the session's own testbed stands for it."""
    return block.code.strip() in ("protoproxy testbed", "protoproxy testbed --access-log")


def shims(bindir: Path) -> Path:
    """`protoproxy` and `python` on PATH as this interpreter, with the tree under test;
    `curl` that fails on an HTTP error status, as a user would notice the error."""
    bindir.mkdir(exist_ok=True)
    commands = {
        "protoproxy": f'"{sys.executable}" -m protoproxy "$@"',
        "python": f'"{sys.executable}" "$@"',
        "python3": f'"{sys.executable}" "$@"',
    }
    curl = shutil.which("curl")
    if curl:  # an HTTP error from the admin API fails the example (exit 22)
        commands["curl"] = f'"{curl}" --fail-with-body "$@"'
    for name, command in commands.items():
        path = bindir / name
        path.write_text(f"#!/bin/sh\nexec {command}\n")
        path.chmod(0o755)
    return bindir


def run_sh(block: Block, workdir: Path, bindir: Path) -> str:
    failed = workdir / f".failed-{block.line}"
    failed.unlink(missing_ok=True)
    env = dict(
        os.environ, DOCS_FAILED=str(failed), PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}"
    )
    proc = subprocess.Popen(
        ["bash", "-c", SH_PRELUDE + block.code + "\n:\n"],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=SH_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        fail(block, f"still running after {SH_TIMEOUT}s; output so far:\n{out.decode()[-3000:]}")
    text = out.decode(errors="replace")
    want_rc = int(block.output.opts.get("exit", "0")) if block.output else 0
    if proc.returncode != want_rc:
        why = failed.read_text().strip() if failed.exists() else f"exit {proc.returncode}"
        fail(block, f"{why} (expected exit {want_rc}); output:\n{text[-3000:]}")
    if block.output is not None:
        check_output(block, text)
    return text


def check_output(block: Block, text: str) -> None:
    assert block.output is not None
    problem = mismatch(block.output.code, text)
    if problem:
        fail(
            block,
            f"output does not match the output block at line {block.output.line}:\n"
            f"{problem}\nwhole output:\n{text[-3000:]}",
        )


# -- yaml ----------------------------------------------------------------------------

CONFIG_KEYS = set(Config.model_fields)
SCENARIO_KEYS = set(Scenario.model_fields)
#: Completes a config fragment (a `metrics:` or `access_log:` section) for `protoproxy check`.
BASE_CONFIG = {
    "listeners": [{"name": "base", "listen": "127.0.0.1:0", "upstream": "base"}],
    "upstreams": [{"name": "base", "endpoints": ["127.0.0.1:9"]}],
}


def yaml_kind(block: Block, data: Any) -> str:
    if block.words:
        return block.words[0]
    if not isinstance(data, dict):
        return "?"
    keys = set(data)
    if "listeners" in keys:
        return "config"
    if keys <= {"faults", "seed"}:
        return "faults"
    if keys <= CONFIG_KEYS:
        return "fragment"
    if keys <= SCENARIO_KEYS:
        return "scenario"
    return "?"


def tls_files(data: Any, workdir: Path) -> None:
    """Create every certificate, key and CA file a config names, so it checks as written."""
    import trustme

    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1", "a.example.com", "proxy.example.com")
    contents = {
        "cert": server.private_key_and_cert_chain_pem.bytes(),
        "key": server.private_key_pem.bytes(),
        "ca": ca.cert_pem.bytes(),
        "client_ca": ca.cert_pem.bytes(),
    }

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in contents and isinstance(value, str):
                    path = workdir / value
                    if not path.exists() and not Path(value).is_absolute():
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_bytes(contents[key])
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(data)


def check(block: Block, workdir: Path, bindir: Path, path: Path, want_ok: bool) -> None:
    proc = subprocess.run(
        [str(bindir / "protoproxy"), "check", str(path)],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=SH_TIMEOUT,
    )
    if (proc.returncode == 0) != want_ok:
        fail(
            block,
            f"protoproxy check exited {proc.returncode}, expected "
            f"{'success' if want_ok else 'a failure'}:\n{proc.stdout}{proc.stderr}",
        )


def run_yaml(block: Block, workdir: Path, bindir: Path) -> None:
    data = yaml.safe_load(block.code)
    kind = yaml_kind(block, data)
    name = block.opts.get("file", f"block-{block.line}.yaml")
    want_ok = "invalid" not in block.words
    if kind in ("config", "fragment"):
        doc = data if kind == "config" else {**BASE_CONFIG, **data}
        path = workdir / name
        path.write_text(block.code if kind == "config" else yaml.safe_dump(doc))
        tls_files(doc, workdir)
        check(block, workdir, bindir, path, want_ok)
    elif kind == "scenario":
        path = workdir / name
        path.write_text(block.code)
        scenario = load_scenario(path)
        for i, entry in enumerate(scenario.faults):
            TestbedFaults.parse(i, entry)
    elif kind == "faults":
        entries = data.get("faults") or []
        scenario_list = any("service" in e for e in entries)
        for i, entry in enumerate(entries):
            if scenario_list:
                TestbedFaults.parse(i, entry)
            else:
                FaultSpec.model_validate(entry)
        if "seed" in data and not isinstance(data["seed"], int):
            fail(block, "seed must be an integer")
    elif kind == "stubs":
        from testbed.grpc_stubs import StubError, StubStore

        path = workdir / name
        path.write_text(block.code)
        try:
            StubStore().load_paths([path])
        except StubError as exc:
            if want_ok:
                fail(block, f"the stub file does not load: {exc}")
            return
        if not want_ok:
            fail(block, "the stub file loads, but is marked invalid")
    else:
        fail(
            block,
            f"cannot tell what this YAML is (keys {sorted(data) if isinstance(data, dict) else data!r}); "
            "tag it: yaml config | yaml scenario | yaml faults | yaml stubs",
        )


# -- json ----------------------------------------------------------------------------


def json_documents(text: str) -> list[Any]:
    """One JSON value, or JSON lines (an access log)."""
    try:
        return [json.loads(text)]
    except ValueError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def run_json(block: Block, testbed: live.LiveTestbed | None) -> None:
    docs = json_documents(block.code)
    words = block.words
    if words[:1] == ["access-log"] or (not words and all(map(_is_access_log, docs))):
        assert testbed is not None
        # the log is buffered (flushed once a second): wait for the lines to be written
        deadline = time.monotonic() + 15
        while True:
            problem = _access_log_problem(docs, testbed.access_log())
            if problem is None:
                return
            if time.monotonic() > deadline:
                fail(block, problem)
            time.sleep(0.2)
    if words[:1] in (["GET"], ["POST"]):
        method, route = words[0], words[1]
        (doc,) = docs
        live.reset()
        if method == "POST":
            status, body = live.admin("POST", route, doc)
            if status >= 300:
                fail(block, f"POST {route} answered {status}: {body}")
            live.reset()
            return
        with contextlib.ExitStack() as stack:
            if route.startswith("/connections"):
                stack.enter_context(open_echo_connection())
            status, body = live.admin("GET", route)
        live.reset()
        if status != 200:
            fail(block, f"GET {route} answered {status}: {body}")
        problems = differences(doc, body)
        if problems:
            fail(block, f"differs from the live GET {route}:\n" + "\n".join(problems))
        return
    if words[:1] == ["fault"]:
        for doc in docs:
            FaultSpec.model_validate(doc)
        return
    if words[:1] == ["toxic"]:
        for doc in docs:
            Toxic.model_validate(doc)
        return
    fail(
        block,
        "say what this JSON is: json GET /route | json POST /route | json access-log | json fault | json toxic",
    )


def _access_log_problem(docs: list[Any], lines: list[dict[str, Any]]) -> str | None:
    for doc in docs:
        same = [ln for ln in lines if ln.get("protocol") == doc.get("protocol")]
        if not same:
            return f"no live access log line of protocol {doc.get('protocol')!r}"
        tries = [differences(doc, ln) for ln in same]
        if all(tries):
            return "no live access log line has this shape:\n" + "\n".join(min(tries, key=len))
    return None


def json_needs_testbed(block: Block) -> bool:
    if block.words[:1] in (["GET"], ["POST"], ["access-log"]):
        return True
    return not block.words and all(_is_access_log(d) for d in json_documents(block.code))


def _is_access_log(doc: Any) -> bool:
    return isinstance(doc, dict) and {"start", "duration", "conn", "listener"} <= set(doc)


@contextlib.contextmanager
def open_echo_connection() -> Any:
    """An open connection with a toxic acting on it, so that /connections has
    something to show, `toxics` included."""
    import socket

    status, body = live.admin(
        "POST", "/proxies/echo/toxics", {"type": "latency", "attributes": {"latency": 1}}
    )
    if status >= 300:
        raise RuntimeError(f"could not add a toxic on echo: {status} {body}")
    with socket.create_connection(("127.0.0.1", live.DEFAULT_PORTS["echo"]), timeout=5) as s:
        s.sendall(b"hello\n")
        s.recv(16)
        yield s


# -- python --------------------------------------------------------------------------

#: Runs a block with top-level await allowed, as the examples are written in the
#: body of an async test or `python -m asyncio`.
PY_RUNNER = textwrap.dedent(
    """
    import ast, asyncio, sys, types
    # A loaded CI machine is not an example's failure: no deadline and no
    # too-slow health check for hypothesis, as in the suite's "ci" profile.
    from hypothesis import HealthCheck, settings
    settings.register_profile(
        "docs", database=None, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    settings.load_profile("docs")
    source = open(sys.argv[1]).read()
    code = compile(source, sys.argv[1], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    module = types.ModuleType("__main__")
    sys.modules["__main__"] = module
    result = eval(code, module.__dict__)
    if asyncio.iscoroutine(result):
        asyncio.run(result)
    """
)


def run_python(block: Block, workdir: Path, bindir: Path) -> None:
    script = workdir / f"block-{block.line}.py"
    script.write_text(block.code)
    runner = workdir / "run_block.py"
    runner.write_text(PY_RUNNER)
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(ROOT / "codecs"), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    try:
        proc = subprocess.run(
            [sys.executable, str(runner), str(script)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=PYTHON_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        fail(block, f"still running after {PYTHON_TIMEOUT}s: {exc.output!r}")
    if proc.returncode != 0:
        fail(block, f"exit {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-4000:]}")
    if block.output is not None:
        check_output(block, proc.stdout)


def uses(block: Block, tool: str) -> bool:
    return re.search(rf"(^|[\s|;&(]){re.escape(tool)}\b", block.code) is not None
