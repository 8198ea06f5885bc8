"""pytest's hooks and fixtures for the whole suite; the shared helpers are in ``helpers.py``."""

from __future__ import annotations

import logging
import sys
from typing import Any

import pytest
import structlog


def quiet_logs() -> None:
    """Keep structlog quiet: warnings and errors only, printed to whatever stdout is current (pytest
    swaps and closes its capture streams between tests, so the stream must not be bound once)."""
    structlog.reset_defaults()
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=lambda *args: structlog.PrintLogger(sys.stdout),
        cache_logger_on_first_use=False,
    )


def pytest_configure(config: pytest.Config) -> None:
    quiet_logs()


@pytest.fixture(autouse=True)
def _restore_logging() -> Any:
    """A test that runs the CLI (which configures logging for a terminal) must not leave that set-up
    to the tests after it."""
    yield
    quiet_logs()
