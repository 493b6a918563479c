"""An in-memory stand-in for the monitor's Redis stream, for unit tests and replays."""

from __future__ import annotations


class InMemoryMonitorStore:
    """What RedisStore does for the monitor, kept in a list: (seq, text), oldest first."""

    def __init__(self, maxlen: int = 100_000) -> None:
        self.maxlen = maxlen
        self.entries: list[tuple[int, str]] = []
        self.fail_reads = False  # a Redis that is down

    def append_monitor(self, seq: int, text: str) -> None:
        if self.entries and seq <= self.entries[-1][0]:
            return  # Redis refuses an id that is not above the last one
        self.entries.append((seq, text))
        del self.entries[:-self.maxlen]

    async def monitor_after(self, seq: int, count: int) -> list[tuple[int, str]]:
        if self.fail_reads:
            raise ConnectionError("redis is down")
        return [e for e in self.entries if e[0] > seq][:count]

    async def monitor_last_seq(self) -> int:
        if self.fail_reads:
            raise ConnectionError("redis is down")
        return self.entries[-1][0] if self.entries else 0
