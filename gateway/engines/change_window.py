"""High-water marks for the change feeds of the HTTP engines (`EngineAdapter.read_changes`).

Each change source of an engine (created tasks, finished instances, ...) is read by time with its own mark: the
time of the newest change taken and the keys taken at exactly that time. A source is queried from one millisecond
before the mark (engines differ on whether "after" includes the bound) up to the settle time, and a row is new
when it is younger than the mark, or as old but not taken yet. Rows come oldest first, a page at a time; when a
source's page is full, every source stops short of that page's newest time, so that an instance's changes from
different sources are never emitted out of order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from gateway.engines.port import ChangeBatch, EngineChange
from gateway.variables import parse_datetime

PAGE_SIZE = 500
OVERLAP = timedelta(milliseconds=1)


@dataclass
class SourceWindow:
    since: datetime
    seen: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, stored: dict[str, Any] | None, start: datetime) -> SourceWindow:
        """A source's window from its stored mark; a source read for the first time starts at `start`."""
        if not stored:
            return cls(since=start)
        return cls(since=parse_datetime(stored["since"]), seen=set(stored.get("seen", [])))

    @property
    def query_after(self) -> datetime:
        return self.since - OVERLAP

    def is_new(self, key: str, at: datetime) -> bool:
        return at > self.since or (at == self.since and key not in self.seen)

    def take(self, key: str, at: datetime) -> None:
        if at > self.since:
            self.since, self.seen = at, set()
        self.seen.add(key)

    def dump(self) -> dict[str, Any]:
        return {"since": self.since.isoformat(), "seen": sorted(self.seen)}


@dataclass
class SourceRows:
    """What one source returned: `(key, engine time, change)` oldest first, and whether the page was full."""

    rows: list[tuple[str, datetime, EngineChange | None]]
    full: bool


def collect(mark: dict[str, Any], start: datetime, read: dict[str, SourceRows]) -> ChangeBatch:
    """Take the new rows of every source up to the common horizon; a row whose change is None (a row the feed
    reads but that reports nothing, e.g. a task deleted with its instance) only moves the mark."""
    horizon = min((rows.rows[-1][1] for rows in read.values() if rows.full and rows.rows), default=None)
    changes: list[EngineChange] = []
    new_mark: dict[str, Any] = {}
    for source, rows in read.items():
        window = SourceWindow.load(mark.get(source), start)
        for key, at, change in rows.rows:
            if horizon is not None and at >= horizon and not _single_instant(read, horizon):
                break
            if window.is_new(key, at):
                window.take(key, at)
                if change is not None:
                    changes.append(change)
        new_mark[source] = window.dump()
    return ChangeBatch(changes=changes, mark=new_mark)


def _single_instant(read: dict[str, SourceRows], horizon: datetime) -> bool:
    """A full page whose rows all share one time would never move past it: take that instant whole."""
    return any(rows.full and rows.rows and rows.rows[0][1] == horizon for rows in read.values())
