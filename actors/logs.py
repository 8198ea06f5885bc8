"""How trio-spdz logs: as a library, through the standard ``logging`` hierarchy and silent unless the
application configures logging; as the CLI and daemons, key=value console lines or JSON to stderr.

Events are snake_case with key=value fields, from ``structlog`` loggers named ``spdz.<part>``.
Nothing secret is ever passed to a logger: not shares, not MAC keys, not seeds (reviewers grep for
it).

* ``library_defaults()`` (run when ``actors`` is imported): unless structlog is configured already,
  events become records of the stdlib loggers ``spdz.engine``, ``spdz.offline``, ... with the message
  ``event key=value ...``; a ``NullHandler`` on ``spdz`` keeps them silent until the application
  sets up logging (``logging.basicConfig(level=logging.INFO)`` shows them, a handler on the ``spdz``
  logger shows only ours).
* ``configure(level, fmt)``: the CLI's and the daemon's own output, console or JSON lines on stderr.
"""

from __future__ import annotations

import logging
import sys

import structlog


def _message(logger: object, method: str, event: structlog.typing.EventDict) -> str:
    """The stdlib record's message: ``event key=value ...`` (level and time are the handler's)."""
    text = str(event.pop("event", ""))
    fields = " ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in event.items())
    return f"{text} {fields}" if fields else text


def library_defaults() -> None:
    """Log through the standard ``logging`` hierarchy, silently until the application configures
    logging (module docstring). Leaves an existing structlog configuration alone."""
    logging.getLogger("spdz").addHandler(logging.NullHandler())
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, _message],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


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
