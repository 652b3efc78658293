"""A client's outgoing buffer: the latest event per object, bounded, with a dropped count.

Pure code. The feed puts every event for a client here and the client's
sender takes them out as fast as its socket accepts them. A client that reads
slowly does not make the buffer grow without bound:

- an event for an object that already waits in the buffer (a newer position
  of the same vehicle, a newer state of the same alert or case) replaces the
  waiting one, which counts as dropped: the client gets the latest state, not
  every step;
- when more than ``limit`` objects wait, the oldest waiting one is dropped.

So the buffer never holds more than ``limit`` events whatever the client does.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field

Key = tuple[str, Hashable]  # (kind, object id): ("position", 42), ("alert", 7)


@dataclass(slots=True)
class LatestBuffer:
    """Events keyed by object, oldest first; at most ``limit`` of them."""

    limit: int
    dropped: int = 0  # events replaced or evicted before they were sent, since creation
    _waiting: OrderedDict[Key, object] = field(default_factory=OrderedDict)

    def __post_init__(self) -> None:
        if self.limit < 1:
            msg = "a buffer holds at least one event"
            raise ValueError(msg)

    def __len__(self) -> int:
        return len(self._waiting)

    def put(self, kind: str, object_id: Hashable, doc: object) -> None:
        """Queue ``doc`` (a JSON document, or one already encoded) for (kind, object_id)."""
        key = (kind, object_id)
        if key in self._waiting:
            del self._waiting[key]  # re-queued at the end: it is the newest change now
            self.dropped += 1
        self._waiting[key] = doc
        while len(self._waiting) > self.limit:
            self._waiting.popitem(last=False)
            self.dropped += 1

    def take(self, at_most: int) -> list[tuple[str, object]]:
        """Remove and return up to ``at_most`` events, oldest first, as (kind, doc)."""
        out: list[tuple[str, object]] = []
        while self._waiting and len(out) < at_most:
            (kind, _), doc = self._waiting.popitem(last=False)
            out.append((kind, doc))
        return out

    def discard(self, kind: str, object_id: Hashable) -> None:
        """Forget a waiting event the client may no longer receive (not counted as dropped)."""
        self._waiting.pop((kind, object_id), None)
