"""systemd's readiness protocol (``sd_notify``), without libsystemd.

Why by hand: the protocol is one datagram of ``KEY=VALUE`` lines to the Unix socket named in
``$NOTIFY_SOCKET`` (an ``@`` prefix means Linux's abstract namespace, i.e. a leading NUL byte), and a
binding to libsystemd would be a C dependency for four lines of code. Outside systemd the variable is
unset and every call here is a no-op, so the daemon never needs to know how it was started.

What the daemon sends, and when (``actors.daemon``): ``READY=1`` once it listens (control socket and
TLS port bound), ``STATUS=...`` as links and pools change, ``WATCHDOG=1`` every half of
``$WATCHDOG_USEC`` from the event loop (so a wedged loop gets the unit restarted), ``STOPPING=1`` when
a graceful stop begins. Notifications are best effort: a full or vanished socket is logged once and
never takes the daemon down.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger("spdz.sdnotify")

MAX_STATUS = 1000  # systemd shows one line; keep the datagram small


def socket_address(value: str) -> str | bytes:
    """The ``AF_UNIX`` address for a ``$NOTIFY_SOCKET`` value: ``@name`` is abstract (leading NUL)."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


class Notifier:
    """Sends notifications to the service manager named by ``NOTIFY_SOCKET`` (none: a no-op)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        value = env.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = socket_address(value) if value else None
        self._watchdog = _watchdog_interval(env)
        self._sock: socket.socket | None = None
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between ``WATCHDOG=1`` pings (half the manager's timeout), or None if not asked."""
        return self._watchdog

    def notify(self, **fields: str | int) -> bool:
        """Send one datagram with ``fields`` as ``KEY=VALUE`` lines; True if it was sent."""
        if self.address is None:
            return False
        lines = []
        for key, value in fields.items():
            text = " ".join(str(value).split())  # one line: a newline would start another field
            lines.append(f"{key}={text[:MAX_STATUS]}")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto("\n".join(lines).encode(), self.address)
        except OSError as e:
            if not self._failed:  # once: a manager that went away must not flood the log
                log.warning("sd_notify_failed", socket=str(self.address), error=str(e))
                self._failed = True
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.notify(READY=1, STATUS=status)

    def status(self, status: str) -> bool:
        return self.notify(STATUS=status)

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1)

    def stopping(self, status: str) -> bool:
        return self.notify(STOPPING=1, STATUS=status)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Half of ``WATCHDOG_USEC`` in seconds, if it is set for this process (``WATCHDOG_PID``)."""
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None  # meant for another process (we were forked from the one it names)
    return int(usec) / 2e6
