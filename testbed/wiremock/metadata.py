"""Which mappings ``POST /__admin/mappings/remove-by-metadata`` removes.

WireMock applies the body, a string matcher such as
``{"matchesJsonPath": {"expression": "$.team", "equalTo": "payments"}}``, to
each mapping's ``metadata`` as JSON; the same matchers the request bodies use
(matchers.py) do it here, so a pattern means the same in both places.
"""

from __future__ import annotations

import json
from typing import Any

from .matchers import parse_value_matcher


def matching_ids(mappings: list[dict[str, Any]], pattern: dict[str, Any]) -> list[str]:
    """Ids of the `mappings` (admin JSON) whose metadata `pattern` matches.

    A bad pattern raises MappingError (a ValueError) naming where in the body.
    """
    matcher = parse_value_matcher(pattern, "remove-by-metadata")
    out = []
    for mapping in mappings:
        metadata = mapping.get("metadata")
        if metadata is None:
            continue
        if matcher.match(json.dumps(metadata)) == 0:
            out.append(str(mapping.get("id") or mapping.get("uuid")))
    return out
