"""Run a long-lived server until SIGINT/SIGTERM, then stop it cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Protocol


class Startable(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def run_until_signal(server: Startable) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await server.start()
    try:
        await stop.wait()
    finally:
        await server.stop()
