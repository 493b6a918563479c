"""Shared test configuration.

Tests under tests/integration are marked `integration` automatically: they run
against the real lab (Asterisk 22, Redis, SIPp) and never skip. If the lab
cannot start, they fail loudly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

INTEGRATION_DIR = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)
