"""What an import tells the person running it: rejected rows, progress, a summary."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

__all__ = ["Progress", "RowProblem", "Summary"]


@dataclass(frozen=True, slots=True)
class RowProblem:
    """An input row or feature that was not imported, and why."""

    where: str  # "line 7" (CSV, header = line 1) or "feature 3"
    reason: str  # stable snake_case
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}: {self.message}"


class Progress:
    """``label: N/total`` on a stream at most every ``interval_s``, and once at the end."""

    def __init__(
        self,
        label: str,
        total: int,
        stream: TextIO,
        *,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._stream = stream
        self._interval = interval_s
        self._clock = clock
        self._last = clock()

    def step(self, n: int = 1) -> None:
        self.done += n
        now = self._clock()
        if now - self._last >= self._interval:
            self._last = now
            self._print()

    def finish(self) -> None:
        self._print()

    def _print(self) -> None:
        print(f"{self.label}: {self.done}/{self.total}", file=self._stream, flush=True)


@dataclass
class Summary:
    """Counts of what an import did, printable as a few lines."""

    title: str
    counts: Counter[str] = field(default_factory=Counter)
    repaired: list[str] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)

    def lines(self) -> list[str]:
        shown = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())) or "nothing"
        out = [f"{self.title}: {shown}"]
        if self.repaired:
            out.append(f"repaired ({len(self.repaired)}): {', '.join(self.repaired)}")
        if self.problems:
            by_reason = Counter(p.reason for p in self.problems)
            reasons = ", ".join(f"{r} {n}" for r, n in sorted(by_reason.items()))
            out.append(f"skipped ({len(self.problems)}): {reasons}")
            out.extend(f"  {p}" for p in self.problems)
        return out
