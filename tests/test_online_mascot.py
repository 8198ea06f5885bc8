"""The whole online suite again, with MASCOT preprocessing instead of the test dealer.

Every test of ``test_online`` is collected a second time here; an autouse fixture switches the
cluster helpers in ``helpers`` to MASCOT (small pools so each cluster starts quickly, and 10^4 instead
of 10^5 elements for the long-vector test). What passes with the dealer must pass with the real
offline phase: same results, same aborts.
"""

from __future__ import annotations

import pytest
from test_online import *  # noqa: F403  (re-collect every test of the online suite)

pytestmark = pytest.mark.slow  # real processes or MASCOT: left out of the fast subset


@pytest.fixture(autouse=True)
def _use_mascot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPDZ_TEST_PREPROCESSING", "mascot")


@pytest.fixture
def autojump_clock() -> None:
    """The real clock instead of the autojump one for the tests that ask for it: MASCOT computes in
    worker threads, and a task waiting for a thread counts as blocked, so virtual time would jump past
    the cluster deadline while honest work is still running. The error cases those tests check end
    promptly on the real clock."""
    return None
