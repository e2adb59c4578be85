"""One wording for a bad fault entry, whichever way it reaches the proxy.

The same entry goes into a config file, ``POST /faults`` and a testbed
scenario; each must name the same path (below where the entry sits) and say
the same thing. The cases are the ones pydantic words for programmers: a
missing key, a list position, an unknown key, a validator's message.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from protoproxy import config
from protoproxy.config_errors import ConfigError
from testbed.harness import Testbed
from testbed.scenario import Scenario

from .test_control import call
from .test_toxics_peers import ProxyThread, echo, proxied

#: a bad fault entry and the (path in the entry, message) pairs every source must give
CASES: list[tuple[dict[str, Any], list[tuple[str, str]]]] = [
    ({"action": {"delay": "1ms"}}, [("name", "is required")]),
    (
        {"name": "b", "action": {"delay": "1ms"}, "schedule": {"between": ["soon", "2s"]}},
        [("schedule.between[0]", "'soon' is not a duration (use e.g. 200ms, 5s, 1m)")],
    ),
    (
        {"name": "b", "action": {"drop": True}, "oops": 1},
        [("oops", "unknown key (not allowed here)")],
    ),
    (
        {"name": "b", "match": {"protocol": "kafka"}, "action": {"abort": "UNAVAILABLE"}},
        [("action", "unknown Kafka error 'UNAVAILABLE' (match.protocol is kafka)")],
    ),
]
IDS = ["missing", "list-position", "unknown-key", "validator"]


@pytest.fixture(scope="module")
def proxy() -> Iterator[ProxyThread]:
    with proxied(echo) as (proxy, _):
        yield proxy


@pytest.mark.parametrize(("entry", "expected"), CASES, ids=IDS)
def test_config_file_names_the_path_into_the_config(entry, expected):
    document = {
        "listeners": [{"name": "t", "listen": "127.0.0.1:0", "protocol": "tcp", "upstream": "u"}],
        "upstreams": [{"name": "u", "endpoints": ["127.0.0.1:9"]}],
        "faults": [{"name": "ok", "toxic": {"type": "timeout"}}, entry],
    }
    with pytest.raises(ConfigError) as info:
        config.loads(yaml.safe_dump(document), source="faults.yaml")
    assert info.value.problems == [(f"faults[1].{path}", msg) for path, msg in expected]


@pytest.mark.parametrize(("entry", "expected"), CASES, ids=IDS)
def test_post_faults_words_it_as_the_config_does(proxy, entry, expected):
    status, body = call(proxy, "POST", "/faults", entry)
    assert status == 400
    assert body["problems"] == [f"{path}: {msg}" for path, msg in expected]


@pytest.mark.parametrize(("entry", "expected"), CASES, ids=IDS)
async def test_testbed_scenario_words_it_as_the_config_does(entry, expected):
    bad = Scenario.ephemeral(
        kafka={"enabled": False},
        grpc={"enabled": False},
        http={"enabled": False},
        faults=[{"name": "ok", "match": {"listener": "echo"}, "toxic": {"type": "timeout"}}, entry],
    )
    with pytest.raises(ConfigError) as info:
        async with Testbed(bad):
            pass
    assert info.value.problems == [(f"faults[1].{path}", msg) for path, msg in expected]
