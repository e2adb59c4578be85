"""Tap config: every mistake is reported with its config path."""

from __future__ import annotations

from typing import Any

import pytest

from protoproxy.config import from_dict
from protoproxy.config_errors import ConfigError


def _config(**extra: Any) -> dict[str, Any]:
    return {
        "listeners": [
            {"name": "front", "listen": "127.0.0.1:0", "protocol": "tcp", "upstream": "u"}
        ],
        "upstreams": [{"name": "u", "endpoints": ["127.0.0.1:9"]}],
        **extra,
    }


@pytest.mark.parametrize(
    ("captures", "where", "what"),
    [
        ({"taps": [{"peer": "nope"}]}, "captures.taps[0].peer", "is not an address or network"),
        ({"taps": [{"listener": "back"}]}, "captures.taps[0].listener", "unknown listener 'back'"),
        ({"taps": [{"protocol": "smtp"}]}, "captures.taps[0].protocol", ""),
        ({"taps": [{"name": "a b"}]}, "captures.taps[0].name", ""),
        ({"taps": [{"name": "t"}, {"name": "t"}]}, "captures.taps[1].name", "duplicate tap name"),
        ({"taps": [{"max_files": 0}]}, "captures.taps[0].max_files", ""),
        ({"taps": [{"queue_bytes": "lots"}]}, "captures.taps[0].queue_bytes", ""),
        ({"tap": []}, "captures.tap", ""),
    ],
)
def test_mistakes_name_their_path(captures: dict[str, Any], where: str, what: str) -> None:
    with pytest.raises(ConfigError) as err:
        from_dict(_config(captures=captures))
    assert where in str(err.value) and what in str(err.value)


def test_a_listener_capture_taps_that_listener_only() -> None:
    cfg = _config()
    cfg["listeners"][0]["capture"] = {"listener": "other"}
    with pytest.raises(ConfigError) as err:
        from_dict(cfg)
    assert "listeners[0]" in str(err.value) and "capture.listener" in str(err.value)
    cfg["listeners"][0]["capture"] = {"peer": "10.0.0.0/8", "max_bytes": "2GiB"}
    tap = from_dict(cfg).listeners[0].capture
    assert tap is not None and tap.max_bytes == 2 * 1024**3 and tap.redact
