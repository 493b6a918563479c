"""A monitor feed client: follows a service's WebSocket feed and keeps every message.

For the demo, the lab tests and benches: what a wallboard or a softphone does,
minus the screen. Each message is kept with the client's receive time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

from telephony.lab.topology import HOST

Message = dict[str, Any]


class FeedClient:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.messages: list[Message] = []
        self.received_at: list[float] = []  # time.time() at each message's arrival
        self.closed_with: int | None = None
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.received_at.append(time.time())
                self.messages.append(json.loads(msg.data))
        self.closed_with = self.ws.close_code

    @property
    def last_seq(self) -> int:
        return max((m["seq"] for m in self.messages), default=0)

    def of_call(self, call_id: str) -> list[Message]:
        return [m for m in self.messages if m["type"] == "call" and m["call_id"] == call_id]

    def gaps(self) -> list[tuple[int, int]]:
        """(after, next) pairs where an unfiltered client's seqs jump; a snapshot restarts."""
        out, last = [], None
        for msg in self.messages:
            seq = msg["seq"]
            if msg["type"] != "snapshot" and last is not None and seq != last + 1:
                out.append((last, seq))
            last = seq
        return out

    async def wait_for(self, predicate: Callable[[Message], bool],
                       within_s: float = 20.0) -> Message:
        """The first message (already received or still to come) that matches."""
        loop = asyncio.get_running_loop()
        deadline, seen = loop.time() + within_s, 0
        while True:
            for msg in self.messages[seen:]:
                if predicate(msg):
                    return msg
            seen = len(self.messages)
            if loop.time() > deadline or self._reader.done():
                raise TimeoutError(f"no matching message among {len(self.messages)}")
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def follow(port: int, token: str, host: str = HOST,
                 **params: Any) -> AsyncIterator[FeedClient]:
    """Connect to http://host:port/api/v1/monitor with filters / `since` in `params`."""
    query = {k: str(v) for k, v in params.items()}
    async with aiohttp.ClientSession() as http, http.ws_connect(
            f"http://{host}:{port}/api/v1/monitor", params=query,
            headers={"Authorization": f"Bearer {token}"}) as ws:
        client = FeedClient(ws)
        try:
            yield client
        finally:
            await ws.close()
            with contextlib.suppress(asyncio.CancelledError):
                await client._reader
