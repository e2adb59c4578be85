"""Examples that fail today because of a code defect another branch is fixing.

Keyed by the document and a piece of the block's text (line numbers move with
every edit). Each is xfail(strict=True): once the fix is merged the example
passes, the xfail turns into a failure, and its entry here is deleted.
"""

from __future__ import annotations

from .blocks import Block

PENDING: dict[tuple[str, str], str] = {}


def reason(block: Block) -> str | None:
    for (path, snippet), why in PENDING.items():
        if block.path == path and snippet in block.code:
            return why
    return None
