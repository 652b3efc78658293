"""Reading changes by watermark without missing late commits or repeating old states.

Pure code. The feed asks each table for the rows changed after its watermark
*minus an overlap*: a transaction that stamped its rows before committing
(``now()`` is the transaction's start; ingest stamps ``received_at`` when a
message arrives) becomes visible after rows with later stamps, so reading
from the watermark alone would miss it. The overlap reads such rows again;
:class:`Versions` drops the states already sent.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(slots=True)
class Watermark:
    """The newest change stamp seen in one table."""

    seen: datetime
    overlap: timedelta

    def read_from(self) -> datetime:
        return self.seen - self.overlap

    def advance(self, stamp: datetime | None) -> None:
        if stamp is not None and stamp > self.seen:
            self.seen = stamp


@dataclass(slots=True)
class Versions:
    """The last version (change stamp) sent per object; older or equal ones are not new."""

    _last: dict[Hashable, datetime] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._last)

    def is_new(self, key: Hashable, version: datetime) -> bool:
        """True (and remembered) when ``version`` is newer than the last one of ``key``."""
        last = self._last.get(key)
        if last is not None and version <= last:
            return False
        self._last[key] = version
        return True

    def forget_before(self, stamp: datetime) -> None:
        """Drop versions older than ``stamp``: the overlap will not read them again."""
        stale = [key for key, version in self._last.items() if version < stamp]
        for key in stale:
            del self._last[key]
