"""One partition's transaction bookkeeping: open transactions, the LSO, aborted ranges.

A read_committed consumer needs two facts from the broker, and nothing else
about transactions: how far it may read (the last stable offset, the first
offset of the earliest transaction still open, or the high watermark when none
is) and which producer ranges below that were aborted (Fetch's
`aborted_transactions`, so the client drops those records itself; the markers
in the log tell it where each range ends). This is Kafka's
ProducerStateManager.ongoingTxns plus its aborted-transaction index, kept in
memory and bounded.
"""

from __future__ import annotations

import bisect
from typing import NamedTuple

#: aborted ranges kept per partition; past it the oldest are forgotten (as if
#: retention had removed their segments), so a soak of aborts has bounded memory
MAX_ABORTED = 10_000


class AbortedTxn(NamedTuple):
    producer_id: int
    first_offset: int
    #: the offset of the abort marker
    last_offset: int


class TxnIndex:
    """Open transactions by producer id (first offset), and the aborted ranges."""

    __slots__ = ("_aborted", "_aborted_last", "open")

    def __init__(self) -> None:
        #: producer id -> first offset of its open transaction; insertion order
        #: is first-offset order, because offsets only grow
        self.open: dict[int, int] = {}
        self._aborted: list[AbortedTxn] = []
        # The aborted ranges' last offsets, ascending (markers are appended in
        # offset order), for bisecting a fetch's range.
        self._aborted_last: list[int] = []

    def data(self, producer_id: int, base_offset: int) -> None:
        """A transactional data batch was appended at `base_offset`."""
        if producer_id not in self.open:
            self.open[producer_id] = base_offset

    def marker(self, producer_id: int, marker_offset: int, commit: bool) -> None:
        """A commit/abort marker for `producer_id` was appended at `marker_offset`."""
        first = self.open.pop(producer_id, None)
        if first is None or commit:
            return
        self._aborted.append(AbortedTxn(producer_id, first, marker_offset))
        self._aborted_last.append(marker_offset)
        if len(self._aborted) > MAX_ABORTED:
            del self._aborted[0], self._aborted_last[0]

    def last_stable_offset(self, high_watermark: int) -> int:
        for first in self.open.values():
            return first
        return high_watermark

    def aborted_between(self, start: int, end: int) -> list[AbortedTxn]:
        """Aborted ranges that overlap [start, end): what a fetch from `start` needs."""
        i = bisect.bisect_left(self._aborted_last, start)
        return [a for a in self._aborted[i:] if a.first_offset < end]

    def truncate_before(self, log_start_offset: int) -> None:
        """Forget aborted ranges wholly below the log start (retention removed them)."""
        i = bisect.bisect_left(self._aborted_last, log_start_offset)
        if i:
            del self._aborted[:i], self._aborted_last[:i]
