"""Prometheus metrics (``actors.metrics``): the exposition of a daemon's status and the HTTP endpoint.

The daemon end to end (a real ``spdz party`` scraped over HTTP) is in ``test_daemon.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from actors import metrics
from actors.engine import ABORT_KINDS, abort_kind
from protocols.errors import (
    AbortError,
    CommitmentError,
    MacCheckError,
    PeerLostError,
    PeerTimeoutError,
    ProtocolError,
)


def status(**over: Any) -> dict[str, Any]:
    st: dict[str, Any] = {
        "uptime": 12.5,
        "links": {
            "1": dict(up=True, bytes_sent=1000, bytes_received=2000, reconnects=1, frames_resent=3),
            "2": {"up": False, "bytes_sent": 0, "bytes_received": 0, "reconnects": 0, "frames_resent": 0},
        },
        "pool": {
            "ready": True,
            "epoch": "1-00ff00ff00ff00ff",
            "keys": 2,
            "levels": {"triple": 4096, "bit": 0},
            "watermarks": {"triple": [1024, 8192], "bit": [0, 0]},
            "generated": {"triple": 16384},
            "per_second": {"triple": 2300.5},
            "bytes": 786432,
            "bytes_bound": 268435456,
        },
        "sessions": {"jobs": 1, "offline": 2, "total": 3},
        "abort_counts": {"mac_check": 2, "peer_lost": 1},
    }
    st.update(over)
    return st


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_the_exposition_carries_the_status_figures() -> None:
    got = samples(metrics.render(status))
    assert got[("spdz_up", ())] == 1 and got[("spdz_uptime_seconds", ())] == 12.5
    assert got[("spdz_preprocessing_ready", ())] == 1 and got[("spdz_mac_key_epoch", ())] == 2
    assert got[("spdz_pool_level", (("kind", "triple"),))] == 4096
    assert got[("spdz_pool_low_watermark", (("kind", "triple"),))] == 1024
    assert got[("spdz_pool_high_watermark", (("kind", "triple"),))] == 8192
    assert got[("spdz_generated_total", (("kind", "triple"),))] == 16384
    assert got[("spdz_generation_rate", (("kind", "triple"),))] == 2300.5
    assert got[("spdz_pool_bytes", ())] == 786432 and got[("spdz_pool_bytes_bound", ())] == 268435456
    assert got[("spdz_link_up", (("peer", "1"),))] == 1 and got[("spdz_link_up", (("peer", "2"),))] == 0
    assert got[("spdz_link_bytes_sent_total", (("peer", "1"),))] == 1000
    assert got[("spdz_link_bytes_received_total", (("peer", "1"),))] == 2000
    assert got[("spdz_link_reconnects_total", (("peer", "1"),))] == 1
    assert got[("spdz_link_frames_resent_total", (("peer", "1"),))] == 3
    assert got[("spdz_sessions_running", (("kind", "offline"),))] == 2
    assert got[("spdz_aborts_total", (("reason", "mac_check"),))] == 2
    assert got[("spdz_aborts_total", (("reason", "peer_lost"),))] == 1


def test_a_dealer_party_has_no_pool_metrics() -> None:
    got = samples(metrics.render(lambda: status(pool=None)))
    assert got[("spdz_preprocessing_ready", ())] == 0
    assert not any(name.startswith("spdz_pool") or name == "spdz_mac_key_epoch" for name, _ in got)


def test_abort_reasons_are_counted_by_class_never_by_their_text() -> None:
    assert abort_kind(MacCheckError("MAC check failed")) == "mac_check"
    assert abort_kind(CommitmentError("party 1 opened its commitment to a different value")) == "commitment"
    assert abort_kind(ProtocolError("party 2 sent invalid COPE corrections", culprit=2)) == "protocol"
    relayed = AbortError("party 1 aborted the session: anything a peer says", remote=True)
    assert abort_kind(relayed) == "peer_aborted"
    assert abort_kind(PeerTimeoutError(2, 7, 600.0)) == "timeout"
    assert abort_kind(PeerLostError(1, "no connection for 30.0 s")) == "peer_lost"
    # the class decides, not the text: a plain abort that reads like one is still a plain abort
    assert abort_kind(AbortError("lost party 1: gone for 30 s", culprit=1)) == "abort"
    assert abort_kind(AbortError("pool purged")) == "abort"
    assert str(PeerLostError(1, "it restarted")) == "lost party 1: it restarted"
    assert {abort_kind(e) for e in (MacCheckError("x"), AbortError("y"))} <= set(ABORT_KINDS)


async def http(port: int, request: bytes) -> tuple[int, bytes, bytes]:
    """Send ``request`` raw; return (status code, header block, body)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(request)
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), head, body


async def test_the_endpoint_answers_get_metrics_and_refuses_the_rest(nursery: trio.Nursery) -> None:
    calls = []

    def st() -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("a bug while rendering")
        return status()

    port = await nursery.start(metrics.serve_metrics, 0, st)
    code, head, body = await http(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert code == 200 and b"text/plain; version=" in head
    assert samples(body)[("spdz_link_up", (("peer", "1"),))] == 1
    code, _, body = await http(port, b"GET /metrics HTTP/1.1\r\n\r\n")  # the collector raises
    assert code == 500 and b"log" in body
    assert (await http(port, b"GET / HTTP/1.1\r\n\r\n"))[0] == 404
    assert (await http(port, b"POST /metrics HTTP/1.1\r\n\r\n"))[0] == 405
    assert (await http(port, b"\x00\xff garbage\r\n\r\n"))[0] == 400
    assert (await http(port, b"A" * (metrics.MAX_REQUEST + 10)))[0] == 400
    code, head, body = await http(port, b"HEAD /metrics HTTP/1.0\r\n\r\n")
    assert code == 200 and body == b"" and b"Content-Length: " in head
    code, _, body = await http(port, b"GET /metrics?x=1 HTTP/1.1\r\n\r\n")  # still serving after all that
    assert code == 200 and b"spdz_up 1.0" in body


async def test_a_silent_client_is_dropped_and_others_are_served(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "REQUEST_TIMEOUT", 0.2)
    port = await nursery.start(metrics.serve_metrics, 0, status)
    silent = await trio.open_tcp_stream("127.0.0.1", port)
    assert (await http(port, b"GET /metrics HTTP/1.1\r\n\r\n"))[0] == 200  # not blocked by the silent one
    with trio.fail_after(5):
        data = await silent.receive_some(1024)
    assert data.startswith(b"HTTP/1.1 400")  # told, then closed
    await silent.aclose()
