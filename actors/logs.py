"""structlog set-up for the CLI and daemons: key=value console lines or JSON, to stderr.

Events are snake_case with key=value fields. Nothing secret is ever passed to a logger: not shares,
not MAC keys, not seeds (reviewers grep for it).
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure(level: str | int = "warning", fmt: str = "console") -> None:
    lvl = level if isinstance(level, int) else logging.getLevelName(level.upper())
    if not isinstance(lvl, int):
        raise ValueError(f"unknown log level {level!r}")
    processors: list[structlog.typing.Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
    ]
    if fmt == "json":
        processors.append(structlog.processors.JSONRenderer())
    elif fmt == "console":
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
    else:
        raise ValueError(f"unknown log format {fmt!r} (use 'console' or 'json')")
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        # the stream is looked up per event, not bound now: an embedding application (or a test
        # runner) may replace sys.stderr later, and writing to a closed stream must not kill a party
        logger_factory=lambda *args: structlog.PrintLogger(sys.stderr),
        cache_logger_on_first_use=False,
    )
