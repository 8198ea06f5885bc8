"""pytest's hooks and fixtures for the whole suite; the shared helpers are in ``helpers.py``."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from typing import Any

import helpers
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


@pytest.fixture(scope="module", params=["dealer", pytest.param("mascot", marks=pytest.mark.slow)])
def preprocessing(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs a test once with the INSECURE test dealer and once with MASCOT (marked slow): the cluster
    helpers of ``helpers`` use it. A module opts in with ``pytest.mark.usefixtures("preprocessing")``."""
    with helpers.using(request.param) as kind:
        yield kind
