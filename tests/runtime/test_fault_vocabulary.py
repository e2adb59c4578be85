"""The fault vocabulary in `faults.actions` is the one list: what reads it agrees."""

from __future__ import annotations

from typing import get_args

import pytest

from protoproxy.faults import actions, message_http, message_http2, message_kafka, toxics
from protoproxy.faults.handler import Handler
from protoproxy.faults.model import FaultSpec

HANDLERS: dict[str, type[Handler]] = {
    "kafka": message_kafka.KafkaHandler,
    "http2": message_http2.Http2Handler,
    "http": message_http.Http1Handler,
    "tcp": Handler,
}

#: a valid value for keys whose values are checked (others take any string)
VALUES = {"api": 0, "frame_type": "data"}


def test_toxic_types_are_one_list():
    assert set(get_args(actions.ToxicType)) == set(actions.TOXIC_ATTRIBUTES) == set(toxics.STAGES)


@pytest.mark.parametrize("protocol", sorted(actions.MATCH_KEYS))
def test_every_key_the_model_accepts_is_compiled_by_the_handler(protocol):
    """A key valid for `match.protocol` must not make the handler skip the fault."""
    handler = HANDLERS[actions.CONN_PROTOCOL[protocol]]
    assert handler.protocol == actions.CONN_PROTOCOL[protocol]
    assert actions.MATCH_KEYS[protocol] <= handler.keys
    for key in actions.MATCH_KEYS[protocol]:
        match = {"protocol": protocol, key: VALUES.get(key, "1")}
        FaultSpec.model_validate({"name": "f", "match": match, "action": {"drop": True}})


def test_a_key_of_no_protocol_is_refused():
    with pytest.raises(ValueError, match="match key"):
        FaultSpec.model_validate({"name": "f", "match": {"colour": 1}, "action": {"drop": True}})
