"""``spdz demo``: three hospitals compute joint statistics without showing each other their data.

Each hospital holds, per patient, an age, a length of stay in days and a treatment cost. Together they
compute the number of patients, the total and mean of each column, the total cost-days (a secure dot
product: cost times stay, summed over everyone's patients) and the count of patients over 65 (a
secure comparison is in the [apps] issue; here each hospital contributes its own flag, a secret
input like any other). The results are printed beside the plaintext ones computed on the union,
which no real party could do.

The data is synthetic and public (a fixed seed); numpy's generator is fine for it, never for secrets.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
import trio

from .cluster import Cluster, local_cluster
from .offline import Watermarks

HOSPITALS = ("St Mary's", "Riverside", "Northgate")


def hospital_data(seed: int = 2026) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for size in (1200, 800, 1500):
        age = rng.integers(18, 95, size=size)
        stay = rng.integers(1, 30, size=size)
        cost = rng.integers(500, 20000, size=size)
        out.append({"age": age, "stay": stay, "cost": cost, "over65": (age > 65).astype(np.int64)})
    return out


async def joint_statistics(s: Any, data: list[dict[str, np.ndarray]]) -> dict[str, int]:
    """The SPMD program every hospital runs. ``data[s.party]`` is the only part a party reads."""
    mine = data[s.party]
    cols = {}
    for name in ("age", "stay", "cost", "over65"):
        parts = []
        for h in range(s.n):
            parts.append(await s.input(mine[name] if s.party == h else None, owner=h))
        cols[name] = parts
    totals = {}
    for name, parts in cols.items():
        acc = s.sum(parts[0])
        for p in parts[1:]:
            acc = acc + s.sum(p)
        totals[name] = acc
    cost_days = None
    for p_cost, p_stay in zip(cols["cost"], cols["stay"], strict=True):
        d = await s.dot(p_cost, p_stay)
        cost_days = d if cost_days is None else cost_days + d
    count = sum(p.size for p in cols["age"])
    out = {"patients": count}
    for name, t in totals.items():
        out[f"sum_{name}"] = int(await s.output(t))
    out["sum_cost_x_stay"] = int(await s.output(cost_days))
    return out


def plaintext(data: list[dict[str, np.ndarray]]) -> dict[str, int]:
    union = {k: np.concatenate([d[k] for d in data]) for k in data[0]}
    out = {"patients": len(union["age"])}
    for name in ("age", "stay", "cost", "over65"):
        out[f"sum_{name}"] = int(union[name].sum())
    out["sum_cost_x_stay"] = int((union["cost"] * union["stay"]).sum())
    return out


def needs(data: list[dict[str, np.ndarray]]) -> dict[str, int]:
    """Preprocessing the program consumes: one input mask per input element (pool ``mask<owner>``),
    one triple per element of the dot products."""
    need = {f"mask{i}": 4 * len(d["age"]) for i, d in enumerate(data)}
    need["triple"] = sum(len(d["age"]) for d in data)
    return need


def demo_watermarks(need: dict[str, int]) -> Watermarks:
    """Pools sized to the job: the offline services generate exactly what the demo needs up front."""
    batch = 2048
    top = max(v for k, v in need.items() if k.startswith("mask"))
    up = lambda v: -(-v // batch) * batch  # noqa: E731
    return Watermarks(
        triple=(up(need["triple"]), up(need["triple"])),
        mask=(up(top), up(top)),
        batch={k: batch for k in ("triple", "mask", "square", "bit", "random")},
    )


async def show_progress(c: Cluster, need: dict[str, int], fill: float) -> None:
    """Print the pool levels of party 0 until every pool holds what the program needs (one updating
    line on a terminal, a line per change otherwise)."""
    t0 = trio.current_time()
    tty = sys.stdout.isatty()
    last = ""
    while True:
        levels = c.parties[0].offline.metrics()["levels"] if c.parties[0].offline else {}
        parts = "  ".join(f"{k} {min(levels.get(k, 0), v):>5}/{v}" for k, v in need.items())
        done = all(levels.get(k, 0) >= v for k, v in need.items())
        line = f"  MASCOT preprocessing [{trio.current_time() - t0:5.1f} s]  {parts}"
        if tty:
            print("\r" + line, end="\n" if done else "", flush=True)
        elif parts != last:
            print(line, flush=True)
        last = parts
        if done:
            return
        await trio.sleep(fill)


def bytes_sent(c: Cluster) -> int:
    """Payload bytes all parties have sent so far (TLS: what crossed the links, framing included)."""
    if c.hub is not None:
        return sum(c.hub.bytes_sent)
    return sum(int(getattr(p.links, "bytes_sent", 0)) for p in c.parties)


async def run_demo(modulus: str = "p127", transport: str = "tls") -> int:
    data = hospital_data()
    print("trio-spdz demo: three hospitals, one joint computation, nobody sees another's records")
    for name, d in zip(HOSPITALS, data, strict=True):
        print(f"  party {HOSPITALS.index(name)}: {name:10} {len(d['age']):5} patients (private)")
    print()
    if transport == "tls":
        print("  Network: mutually authenticated TLS 1.3 on loopback; a fresh cluster CA and one")
        print("  certificate per party (its id in the certificate) made in a temporary directory.")
    print("  Preprocessing: MASCOT (maliciously secure, base OT + KOS OT extension + COPE + sacrifice),")
    print("  generated jointly by the three parties' offline services; no trusted dealer.")
    need = needs(data)
    t0 = time.perf_counter()
    marks = demo_watermarks(need)
    async with local_cluster(
        3, transport=transport, modulus=modulus, preprocessing="mascot", watermarks=marks
    ) as c:
        t_setup = time.perf_counter() - t0
        await show_progress(c, need, 0.25)
        t_offline = time.perf_counter() - t0
        for p in c.parties:  # the job's material is ready: no refills, so the online bytes are its own
            if p.offline is not None:
                p.offline.marks = Watermarks(triple=(0, 0), mask=(0, 0), batch=marks.batch)
        sent_offline = bytes_sent(c)
        t1 = time.perf_counter()
        results = await c.run(joint_statistics, data)
        t_online = time.perf_counter() - t1
        sent = bytes_sent(c) - sent_offline
    expect = plaintext(data)
    if any(r != results[0] for r in results):
        print("parties disagree on the result: this is a bug")
        return 1
    got = results[0]
    print()
    print(f"  {'statistic':22} {'secure (MPC)':>16} {'plaintext':>16}  match")
    ok = True
    for k, v in expect.items():
        match = got[k] == v
        ok &= match
        print(f"  {k:22} {got[k]:>16,} {v:>16,}  {'yes' if match else 'NO'}")
    n = got["patients"]
    print(f"  {'mean_age':22} {got['sum_age'] / n:>16.2f} {expect['sum_age'] / n:>16.2f}")
    print(f"  {'mean_stay_days':22} {got['sum_stay'] / n:>16.2f} {expect['sum_stay'] / n:>16.2f}")
    print()
    where = "TLS 1.3 on loopback" if transport == "tls" else f"{transport} transport"
    print(f"  field 2^{127 if modulus == 'p127' else 61}-1, 3 parties in one process, {where}")
    print(
        f"  offline: set-up (base OTs) {t_setup:.2f} s, preprocessing ready after {t_offline:.2f} s, "
        f"{sent_offline / 1e6:.1f} MB exchanged"
    )
    print(f"  online:  {t_online * 1e3:.0f} ms, {sent / 1e6:.2f} MB exchanged, every output MAC-checked")
    print("  result:", "all statistics match the plaintext computation" if ok else "MISMATCH")
    return 0 if ok else 1


def main(modulus: str = "p127", transport: str = "tls") -> int:
    return trio.run(run_demo, modulus, transport)
