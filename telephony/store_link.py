"""The pipe between a service and its store writer process: frames one way, JSON lines back.

Service -> writer (the writer's stdin): frames. A frame is a 12-byte header
(the payload's length, uint32; the perf_counter time its first message was
buffered, float64) and a pickled list of messages, applied in order:

* a fact: a 6-tuple in DomainEvent's field order
  (kind, ts, call_id, ticket_id, leg, data), written by telephony.fact_writes;
* a store call: a 2-tuple (method, args), method one of STORE_CALLS;
* a flush request: ("flush", (token,)), answered once every write before it is in Redis.

Pickle because the C pickler takes about 1 µs per fact, a fraction of building
the Redis writes, which is the work that leaves the event path. Both ends are
this program, started by it: a frame never comes from outside.

Writer -> service (the writer's stdout): one JSON object per line, either
{"type": "stats", ...} about once a second or {"type": "flushed", "token": t, ...}.
Both carry the writer's cumulative counters (STAT_FIELDS) and the lags of the
batches written since the previous line.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import struct
from collections.abc import Sequence
from typing import Any

HEADER = struct.Struct("<Id")
MAX_FRAME = 256 * 1024 * 1024  # far above any real frame; a longer length is corruption

FLUSH = "flush"
# The buffered-write methods of RedisStore a frame may call (never any other attribute).
STORE_CALLS = frozenset(
    ("put_ticket", "put_call", "put_leg", "end_call", "append_timeline", "update_op",
     "append_monitor"))
MAX_LAGS = 5_000  # batch lags per reply line at most (the newest): a line stays short
STAT_FIELDS = ("written", "dropped", "rejected", "coalesced", "pending", "flush_errors",
               "refused", "archived", "archived_steps", "archive_errors", "archive_unreadable",
               "archive_pending", "archive_lag_ms")
# Stats that are a level at the time of the report, not a running count.
LEVEL_FIELDS = frozenset(("pending", "archive_pending", "archive_lag_ms"))


class FrameError(ValueError):
    """A frame that cannot be read: the stream is out of step."""


def encode_frame(first_at: float, messages: Sequence[Any]) -> bytes:
    payload = pickle.dumps(messages, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(payload), first_at) + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[float, list[Any]] | None:
    """The next frame, or None at a clean end of the stream."""
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise FrameError("stream ended inside a frame header") from exc
        return None
    length, first_at = HEADER.unpack(header)
    if length > MAX_FRAME:
        raise FrameError(f"frame of {length} bytes")
    try:
        payload = await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise FrameError("stream ended inside a frame") from exc
    try:
        messages = pickle.loads(payload)
    except Exception as exc:
        raise FrameError(f"unreadable frame: {exc!r}") from exc
    if not isinstance(messages, list):
        raise FrameError(f"frame holds {type(messages).__name__}, not a list")
    return first_at, messages


def reply_line(kind: str, stats: dict[str, Any], **extra: Any) -> bytes:
    return (json.dumps({"type": kind, **stats, **extra}, separators=(",", ":")) + "\n").encode()


def read_reply(line: bytes) -> dict[str, Any] | None:
    """One reply line as a dict; None for anything else (a stray print, a cut line)."""
    try:
        reply = json.loads(line)
    except ValueError:
        return None
    return reply if isinstance(reply, dict) and "type" in reply else None
