"""Queue statistics the 12345 flow needs for its wait announcement and surge mode.

The flow asks an injected `QueueStats`. Two implementations ship here:
`StaticQueueStats` (tests, demos) and `DialplanQueueStats`, which reads Asterisk's
own QUEUE_WAITING_COUNT / QUEUE_VARIABLES / QUEUE_MEMBER functions through the
channel, so it needs no AMI and works under process AGI too. The service may
supply an AMI-backed one with the same method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from ivr.channel import Channel


@dataclass(frozen=True)
class QueueSnapshot:
    waiting: int  # callers already waiting
    avg_hold_s: float  # Asterisk's rolling average hold time
    agents: int = 1  # agents logged in (at least 1 for the estimate)


def estimated_wait_s(snap: QueueSnapshot) -> int:
    """Expected wait for a caller joining now: everyone ahead, shared by the agents."""
    agents = max(snap.agents, 1)
    return math.ceil((snap.waiting + 1) * max(snap.avg_hold_s, 0.0) / agents)


class QueueStats(Protocol):
    async def snapshot(self, queue: str, channel: Channel) -> QueueSnapshot: ...


class StaticQueueStats:
    def __init__(self, snap: QueueSnapshot) -> None:
        self.snap = snap

    async def snapshot(self, queue: str, channel: Channel) -> QueueSnapshot:
        return self.snap


class DialplanQueueStats:
    async def snapshot(self, queue: str, channel: Channel) -> QueueSnapshot:
        waiting = _int(await channel.get_variable(f"QUEUE_WAITING_COUNT({queue})"))
        # QUEUE_VARIABLES sets QUEUEHOLDTIME (and friends) on the channel as a side effect.
        await channel.get_variable(f"QUEUE_VARIABLES({queue})")
        hold = _int(await channel.get_variable("QUEUEHOLDTIME"))
        agents = _int(await channel.get_variable(f"QUEUE_MEMBER({queue},logged)"))
        return QueueSnapshot(waiting=waiting, avg_hold_s=float(hold), agents=max(agents, 1))


def _int(value: str | None) -> int:
    try:
        return max(int((value or "0").strip()), 0)
    except ValueError:
        return 0
