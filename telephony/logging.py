"""structlog JSON logging with the hotline's correlation keys.

Every log line is one JSON object. The keys that tie a line to a call
(platform, node, call_id, leg, ticket_id, op_id) live in contextvars, so an
asyncio task that binds them once has them on every line it logs.
"""

from __future__ import annotations

import logging as std_logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, TextIO, cast

import structlog

CONTEXT_KEYS = frozenset({"platform", "node", "call_id", "leg", "ticket_id", "op_id"})


def configure_logging(level: str | int = "INFO", stream: IO[str] | None = None) -> None:
    """Send JSON lines to `stream` (stderr by default). Safe to call again (tests do)."""
    if isinstance(level, str):
        level = std_logging.getLevelName(level.upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(cast(TextIO, stream or sys.stderr)),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str, **bound: Any) -> Any:
    """A logger carrying `logger=name` plus any correlation keys given."""
    _check_keys(bound)
    return structlog.get_logger().bind(logger=name, **bound)


def bind(**keys: Any) -> None:
    """Bind correlation keys for the rest of the current task."""
    _check_keys(keys)
    structlog.contextvars.bind_contextvars(**keys)


@contextmanager
def log_context(**keys: Any) -> Iterator[None]:
    """Bind correlation keys for the duration of a `with` block."""
    _check_keys(keys)
    with structlog.contextvars.bound_contextvars(**keys):
        yield


def _check_keys(keys: dict[str, Any]) -> None:
    # A typo ("callid") would silently break log correlation, so refuse it early.
    unknown = set(keys) - CONTEXT_KEYS
    if unknown:
        raise ValueError(f"unknown log context keys {sorted(unknown)}; use {sorted(CONTEXT_KEYS)}")
