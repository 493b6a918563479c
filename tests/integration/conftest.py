"""The real lab for integration tests: started once per session, never skipped."""

from __future__ import annotations

import pytest

from telephony.lab.lab import Lab


@pytest.fixture(scope="session")
def lab() -> Lab:
    lab = Lab()
    try:
        lab.up(timeout=90)
    except Exception as exc:  # the lab is required: fail, never skip
        pytest.fail(f"the lab could not start: {exc}", pytrace=False)
    return lab
