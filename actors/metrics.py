"""Prometheus metrics of a party daemon, over HTTP on a local port (``metrics_port`` in the config).

What is exported is what ``spdz status`` shows, read at scrape time from ``Daemon.status()`` (on the
daemon's own trio thread: nothing is shared with another thread), in Prometheus' text format
(written by ``prometheus_client``):

* ``spdz_up``, ``spdz_uptime_seconds``, ``spdz_preprocessing_ready``, ``spdz_mac_key_epoch``;
* ``spdz_pool_bytes`` and ``spdz_pool_bytes_bound``: what the pools hold, and their byte bound;
* per pool kind: ``spdz_pool_level``, ``spdz_pool_low_watermark``, ``spdz_pool_high_watermark``,
  ``spdz_generated_total`` and ``spdz_generation_rate`` (items per second of generation time:
  triples/s for ``kind="triple"``);
* per peer: ``spdz_link_up``, ``spdz_link_bytes_sent_total``, ``spdz_link_bytes_received_total``,
  ``spdz_link_reconnects_total``, ``spdz_link_frames_resent_total``;
* ``spdz_sessions_running`` by ``kind`` (``jobs``: submitted programs, ``offline``: MASCOT sessions,
  ``total``), ``spdz_aborts_total`` by ``reason`` (a small fixed set of classes, see
  ``engine.abort_kind``: never the free text, which could carry a peer's words).

Nothing secret is in there: no shares, keys or inputs; counts, levels and rates only. The endpoint
listens on 127.0.0.1 only (a scraper on the same host, or a local agent that forwards); ``GET
/metrics`` answers, anything else gets 404 or 400, and a client that sends nothing is dropped after
a few seconds. Each connection is one request (``Connection: close``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import structlog
import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = structlog.get_logger("spdz.metrics")

MAX_REQUEST = 8192  # bytes of request line and headers we read before giving up on a client
REQUEST_TIMEOUT = 5.0  # s a client has to send its request


class StatusCollector:
    """A ``prometheus_client`` collector over a status dict as ``Daemon.status()`` returns it."""

    def __init__(self, status: Callable[[], dict[str, Any]]) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        st = self._status()
        yield GaugeMetricFamily("spdz_up", "1 while the party daemon serves", value=1)
        yield GaugeMetricFamily("spdz_uptime_seconds", "seconds since the daemon started", value=st["uptime"])
        yield from self._pool(st.get("pool"))
        yield from self._links(st["links"])
        running = GaugeMetricFamily("spdz_sessions_running", "sessions running now", labels=["kind"])
        for kind in ("jobs", "offline", "total"):
            running.add_metric([kind], st["sessions"][kind])
        yield running
        aborts = CounterMetricFamily("spdz_aborts", "sessions aborted, by class of reason", labels=["reason"])
        for reason, count in sorted(st.get("abort_counts", {}).items()):
            aborts.add_metric([reason], count)
        yield aborts
        yield from self._budgets(st.get("budgets") or {})

    @staticmethod
    def _budgets(budgets: dict[str, dict[str, float]]) -> Iterator[Metric]:
        """The privacy budgets as ``spdz budget`` shows them (as of the last charge)."""
        families = {
            key: GaugeMetricFamily(f"spdz_dp_{name}", text, labels=["dataset"])
            for key, name, text in (
                ("epsilon", "epsilon_budget", "the dataset's privacy budget: total epsilon allowed"),
                ("delta", "delta_budget", "the delta at which the budget's epsilon is measured"),
                ("spent", "epsilon_spent", "epsilon spent on the dataset (the accountant's composition)"),
                ("remaining", "epsilon_remaining", "epsilon left for the dataset"),
            )
        }
        charges = CounterMetricFamily(
            "spdz_dp_charges", "sessions charged to the dataset", labels=["dataset"]
        )
        for name, row in sorted(budgets.items()):
            for key, family in families.items():
                family.add_metric([name], row[key])
            charges.add_metric([name], row["charges"])
        yield from families.values()
        yield charges

    @staticmethod
    def _pool(pool: dict[str, Any] | None) -> Iterator[Metric]:
        ready = GaugeMetricFamily("spdz_preprocessing_ready", "1 when preprocessing is ready for sessions")
        ready.add_metric([], 1 if pool is not None and pool["ready"] else 0)
        yield ready
        if pool is None:  # the INSECURE dealer: no pools
            return
        yield GaugeMetricFamily(
            "spdz_mac_key_epoch",
            "MAC keys set up since the start (re-keyed after aborts)",
            value=pool["keys"],
        )
        level = GaugeMetricFamily("spdz_pool_level", "items in the pool", labels=["kind"])
        low = GaugeMetricFamily("spdz_pool_low_watermark", "generation starts below this", labels=["kind"])
        high = GaugeMetricFamily("spdz_pool_high_watermark", "generation stops at this", labels=["kind"])
        made = CounterMetricFamily("spdz_generated", "items generated (all epochs)", labels=["kind"])
        rate = GaugeMetricFamily(
            "spdz_generation_rate", "items per second of generation time", labels=["kind"]
        )
        for kind, n in sorted(pool["levels"].items()):
            level.add_metric([kind], n)
        for kind, (lo, hi) in sorted(pool["watermarks"].items()):
            low.add_metric([kind], lo)
            high.add_metric([kind], hi)
        for kind, n in sorted(pool["generated"].items()):
            made.add_metric([kind], n)
        for kind, r in sorted(pool["per_second"].items()):
            rate.add_metric([kind], r)
        yield from (level, low, high, made, rate)
        if "bytes" in pool:
            yield GaugeMetricFamily("spdz_pool_bytes", "bytes the pools hold", value=pool["bytes"])
            bound = pool["bytes_bound"]
            yield GaugeMetricFamily("spdz_pool_bytes_bound", "refills stop before passing this", value=bound)

    @staticmethod
    def _links(links: dict[str, dict[str, Any]]) -> Iterator[Metric]:
        up = GaugeMetricFamily("spdz_link_up", "1 while the link to the peer is connected", labels=["peer"])
        counters = {
            key: CounterMetricFamily(f"spdz_link_{key}", text, labels=["peer"])
            for key, text in (
                ("bytes_sent", "payload bytes sent to the peer"),
                ("bytes_received", "payload bytes received from the peer"),
                ("reconnects", "times the link was re-established"),
                ("frames_resent", "frames sent again after a reconnect"),
            )
        }
        for peer, m in sorted(links.items()):
            up.add_metric([peer], 1 if m["up"] else 0)
            for key, family in counters.items():
                family.add_metric([peer], m[key])
        yield up
        yield from counters.values()


def render(status: Callable[[], dict[str, Any]]) -> bytes:
    """The exposition text for one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(status))  # type: ignore[arg-type]
    return generate_latest(registry)


def _reply(code: int, reason: str, body: bytes, content_type: str = "text/plain; charset=utf-8") -> bytes:
    head = (
        f"HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


async def _read_request(stream: trio.abc.Stream) -> bytes | None:
    """The request line and headers, or None if the client sent too much, too little or too slowly."""
    data = b""
    with trio.move_on_after(REQUEST_TIMEOUT):
        while b"\r\n\r\n" not in data and b"\n\n" not in data:
            chunk = await stream.receive_some(MAX_REQUEST)
            if not chunk:
                return data or None
            data += chunk
            if len(data) > MAX_REQUEST:
                return None
        return data
    return None


def answer(request: bytes | None, status: Callable[[], dict[str, Any]]) -> bytes:
    """The HTTP response to one request (raw bytes as the client sent them)."""
    line = (request or b"").split(b"\n", 1)[0].strip()
    parts = line.split()
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        return _reply(400, "Bad Request", b"expected: GET /metrics HTTP/1.1\n")
    method, path = parts[0], parts[1].split(b"?", 1)[0]
    if method not in (b"GET", b"HEAD"):
        return _reply(405, "Method Not Allowed", b"only GET /metrics\n")
    if path != b"/metrics":
        return _reply(404, "Not Found", b"metrics are at /metrics\n")
    body = render(status)
    response = _reply(200, "OK", body, CONTENT_TYPE_LATEST)
    return response[: len(response) - len(body)] if method == b"HEAD" else response


async def serve_metrics(
    port: int,
    status: Callable[[], dict[str, Any]],
    *,
    host: str = "127.0.0.1",
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``GET /metrics`` on ``host:port`` until cancelled; ``task_status`` gets the bound port."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]
    log.info("metrics_listening", host=host, port=bound)

    async def handle(stream: trio.SocketStream) -> None:
        try:
            async with stream:
                request = await _read_request(stream)
                try:
                    response = answer(request, status)
                except Exception:  # a bug of ours must not take the daemon down with the scrape
                    log.exception("metrics_render_failed")
                    response = _reply(500, "Internal Server Error", b"see the daemon's log\n")
                with trio.move_on_after(REQUEST_TIMEOUT):
                    await stream.send_all(response)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # the client went away: nothing to tell it

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handle, listeners)
        task_status.started(bound)
