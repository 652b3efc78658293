"""Which records were stored while the modem had no coverage (the blind-area backlog).

A tracker keeps recording in a blind area (a tunnel, an underground car park,
a valley without a cell); when coverage returns it uploads what it held. The
cloud must know those records are late (JT/T 808 calls this the blind-area
re-upload): the risk rules read a burst of old fixes differently from live
ones. The agent marks each record stored while its modem reported no link
(``hwio.Link(up=False)``) and sends those in batches flagged ``backlog``.

Marks are runs of sequence numbers of the current boot, kept in memory: one
run per blind period. They are forgotten at a restart (a new boot), so a
backlog held across a restart goes out unflagged. A broker outage with the
modem up is not a blind area and marks nothing. Pure code.
"""

from __future__ import annotations

import bisect

MAX_RUNS = 4096  # blind periods remembered; the oldest are forgotten first


class BacklogMarks:
    """Sorted, disjoint ``[first, last]`` runs of marked sequence numbers."""

    __slots__ = ("_firsts", "_lasts")

    def __init__(self) -> None:
        self._firsts: list[int] = []
        self._lasts: list[int] = []

    def mark(self, seq: int) -> None:
        """Mark ``seq``; sequence numbers normally arrive in increasing order."""
        if self._lasts and self._lasts[-1] + 1 == seq:
            self._lasts[-1] = seq
            return
        if seq in self:
            return
        i = bisect.bisect_left(self._firsts, seq)
        self._firsts.insert(i, seq)
        self._lasts.insert(i, seq)
        if len(self._firsts) > MAX_RUNS:
            del self._firsts[0], self._lasts[0]

    def __contains__(self, seq: object) -> bool:
        if not isinstance(seq, int):
            return False
        i = bisect.bisect_right(self._firsts, seq) - 1
        return i >= 0 and seq <= self._lasts[i]

    def __len__(self) -> int:
        return len(self._firsts)
