"""What a daemon reports about itself: the one line of systemd's ``STATUS=`` and the snapshot that
``spdz status`` and the metrics endpoint show. Plain data only (it goes over msgpack); no secrets:
counts, states, addresses and errors, never shares or keys."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import trio

from .sessions import is_offline

if TYPE_CHECKING:
    from .daemon import PartyDaemon

LINK_FIELDS = (
    "up",
    "lost",
    "connects",
    "reconnects",
    "bytes_sent",
    "bytes_received",
    "frames_sent",
    "frames_resent",
    "rejected_streams",
    "peer_restarts",
    "resyncs",
    "disconnects",
)


def status_line(d: PartyDaemon) -> str:
    """One line for systemd's STATUS=."""
    up = sum(1 for m in d.links.metrics().values() if m["up"])
    parts = [f"party {d.cfg.party}: {d.state}", f"links {up}/{d.cfg.n - 1} up"]
    offline = d.party.offline
    if offline is None:
        parts.append("INSECURE dealer")
    elif d.preprocessing_ready():
        parts.append(f"preprocessing ready, {offline.pool.level('triple')} triples")
    else:
        parts.append("preprocessing setting up")
    parts.append(f"{len(d.jobs.active)} sessions")
    return "; ".join(parts)


def snapshot(d: PartyDaemon) -> dict[str, Any]:
    """What ``spdz status`` shows (plain data: it goes over msgpack)."""
    now = trio.current_time()
    links = {}
    for j, m in d.links.metrics().items():
        addr = d.cfg.peers[j]
        links[str(j)] = {
            "address": f"{addr.host}:{addr.port}",
            "dials": "out" if d.cfg.party < j else "in",
            **{k: m[k] for k in LINK_FIELDS},
        }
    pool = None
    offline = d.party.offline
    if offline is not None:
        m = offline.metrics()
        pool = {
            "ready": d.preprocessing_ready(),
            "epoch": m["epoch"],
            "keys": m["keys"],
            "levels": m["levels"],
            "watermarks": {
                k: list(d.cfg.watermarks.of(k))
                for k in ("triple", "mask", "square", "bit", *d.cfg.watermarks.mixed_kinds())
            },
            "bytes": m["pool_bytes"],
            "bytes_bound": d.cfg.watermarks.pool_bytes,
            "generated": m["generated"],
            "per_second": m["per_second"],
            "failures": m["failures"],
        }
    running = d.party.engine.running
    return {
        "party": d.cfg.party,
        "parties": d.cfg.n,
        "pid": os.getpid(),
        "state": d.state,
        "uptime": now - d.started,
        "field": d.cfg.field,
        "preprocessing": "INSECURE dealer" if d.insecure else "mascot",
        "listen": f"{d.cfg.listen.host}:{d.port or d.cfg.listen.port}",
        "control": str(d.cfg.control_socket),
        "reloads": d.reloads,
        "links": links,
        "tls": {"dialer": d.connector.stats, "listener": d.listener.stats},
        "pool": pool,
        "sessions": {
            "jobs": len(d.jobs.active),
            "offline": sum(1 for s in running if is_offline(s)),
            "total": len(running),
        },
        "jobs": [
            {"session": j.session, "program": j.program, "state": j.state, "seconds": now - j.started}
            for j in d.jobs.active.values()
        ],
        "recent": [
            {
                "session": j.session,
                "program": j.program,
                "state": j.state,
                "seconds": (j.finished or now) - j.started,
                "error": j.error,
            }
            for j in d.jobs.recent
        ],
        "aborts": [{"session": s, "reason": r} for s, r in d.party.engine.aborts[-10:]],
        "budgets": d.jobs.budget_status,
        "abort_counts": dict(d.party.engine.abort_counts),
    }
