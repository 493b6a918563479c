"""The store's writer process: turns the service's facts into Redis writes, off its event loop.

    python -m telephony.store_writer --platform 12345 --redis-url redis://127.0.0.1:16379/0

Started (and restarted) by telephony.store_process.ProcessStore; reads frames
on stdin and answers on stdout (telephony.store_link). Building the writes
(timeline steps, call records) and sending them cost about as much CPU as the
tracker itself, so they run here, on the other core, and the service's loop
only pickles facts. The writes go through an ordinary RedisStore: the same
bounded buffer (oldest dropped first), batching and pipelining.

A malformed message is logged, counted as refused and skipped; an unreadable
frame stops the writer (the stream is out of step), and the service starts a
new one. At the end of stdin (the service closed it, or died) the writer
flushes what it holds and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from telephony.archive.writer import ARCHIVE_DSN_ENV, Archiver
from telephony.lifecycle import settle_heap
from telephony.logging import configure_logging, get_logger
from telephony.store import RedisStore, redis_client
from telephony.store_link import (
    FLUSH,
    MAX_LAGS,
    STAT_FIELDS,
    STORE_CALLS,
    read_frame,
    reply_line,
)

# Loggers are made after configure_logging (a bound logger keeps the set-up it
# was made under, and structlog's default prints to stdout: the reply channel).


class FrameApplier:
    """Applies frames to a RedisStore; pure bookkeeping, no I/O of its own."""

    def __init__(self, store: RedisStore,
                 extra_stats: Callable[[], dict[str, int]] | None = None) -> None:
        self.store = store
        self.extra_stats = extra_stats  # the archiver's counters, when one runs
        self.refused = 0  # malformed messages, skipped
        self.log = get_logger("telephony.store_writer", platform=store.platform)
        store.batch_lags = []

    def apply(self, first_at: float, messages: Sequence[Any]) -> list[Any]:
        """Buffer every write of the frame; the flush tokens it asks for, in order."""
        store, tokens = self.store, []
        store.stamp = first_at  # the lag counts from when the service buffered the frame
        add_fact = store.add_fact
        try:
            for message in messages:
                try:
                    if len(message) == 6:
                        add_fact(message)
                    elif message[0] == FLUSH:
                        tokens.append(message[1][0])
                    elif message[0] in STORE_CALLS:
                        getattr(store, message[0])(*message[1])
                    else:
                        raise ValueError(f"unknown message {message[0]!r}")
                except Exception as exc:  # one bad message never stops the others
                    self.refused += 1
                    if self.refused == 1 or self.refused % 1000 == 0:
                        self.log.error("store_writer_refused", refused=self.refused,
                                       error=repr(exc)[:200])
        finally:
            store.stamp = None
        return tokens

    def stats(self) -> dict[str, Any]:
        """Cumulative counters and the batch lags since the last call."""
        store = self.store
        lags, store.batch_lags = store.batch_lags or [], []
        values = {name: getattr(store, name, 0) for name in STAT_FIELDS if name != "refused"}
        values["refused"] = self.refused
        if self.extra_stats is not None:
            values.update(self.extra_stats())
        return {**values, "lags": [round(lag, 6) for lag in lags[-MAX_LAGS:]]}


async def serve(store: RedisStore, reader: asyncio.StreamReader,
                write: Callable[[bytes], None], stats_every: float = 1.0,
                archiver: Archiver | None = None) -> None:
    applier = FrameApplier(store, archiver.stats.as_dict if archiver is not None else None)
    store.start()
    archiving = asyncio.create_task(archiver.run()) if archiver is not None else None

    async def report() -> None:
        while True:
            await asyncio.sleep(stats_every)
            write(reply_line("stats", applier.stats()))

    reporter = asyncio.create_task(report())
    try:
        while (frame := await read_frame(reader)) is not None:
            for token in applier.apply(*frame):
                await store.flush()
                write(reply_line("flushed", applier.stats(), token=token))
    finally:
        for task in (reporter, archiving):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if archiver is not None:
            await archiver.close()
        await store.close()
        write(reply_line("stats", applier.stats()))


async def _main(args: argparse.Namespace, lags: array[float] | None) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                 os.fdopen(sys.stdin.fileno(), "rb", buffering=0))
    out = sys.stdout.buffer

    def write(line: bytes) -> None:
        out.write(line)
        out.flush()

    # The archive's DSN comes in the environment, not on the command line (ps shows that).
    dsn = os.environ.get(ARCHIVE_DSN_ENV, "")
    store = RedisStore.from_url(args.redis_url, args.platform, max_buffer=args.max_buffer,
                                archive=bool(dsn))
    archiver = Archiver(redis_client(args.redis_url), args.platform, dsn) if dsn else None
    if lags is not None:
        store._lag_sink = lags.extend
    settle_heap()
    await serve(store, reader, write, archiver=archiver)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--platform", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--max-buffer", type=int, default=100_000)
    parser.add_argument("--lag-log", help="write every write's lag (float64 s) here at exit")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    configure_logging(args.log_level, sys.stderr)
    lags: array[float] | None = array("d") if args.lag_log else None
    try:
        asyncio.run(_main(args, lags))
    except Exception as exc:  # e.g. an unreadable frame: the service starts a new writer
        get_logger("telephony.store_writer").error("store_writer_failed", error=repr(exc)[:500])
        return 1
    finally:
        if lags is not None:
            Path(args.lag_log).write_bytes(lags.tobytes())
    return 0


if __name__ == "__main__":
    sys.exit(main())
