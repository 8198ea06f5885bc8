"""Three banks pool their fraud statistics without pooling their transactions.

Each bank holds its own card transactions (synthetic, from a fixed seed: amount, hour of day,
whether the card was used abroad, whether the transaction was confirmed fraud). Together, in one
secure session, they compute what none could alone, and reveal only these numbers:

* the number of transactions and the joint fraud rate;
* the mean amount of fraudulent and of legitimate transactions (``mean_where``: the number of frauds
  itself is not revealed by that step, though the rate and the count together give it);
* the fraud rate abroad and at home;
* the correlations between amount, use abroad and fraud;
* a histogram of the amounts (secure comparisons of every amount against the public bin edges).

Each bank learns the others' transaction counts (the input protocol announces array shapes), nothing
else about their rows. Every number is printed beside the plaintext one computed on the union, which
no bank could compute. MASCOT preprocessing by default, ``--dealer`` for the INSECURE test dealer.

    python examples/bank_fraud_stats.py [--dealer] [--sizes 120,80,100] [--tls]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import trio  # noqa: E402

from protocols.apps import stats  # noqa: E402
from protocols.apps.table import share_table  # noqa: E402
from protocols.fixedpoint import FixedFormat  # noqa: E402
from protocols.online import Session  # noqa: E402

BANKS = ("Northbank", "Harbour Savings", "Crown Mutual")
SIZES = (120, 80, 100)
EDGES = (0.0, 20.0, 100.0, 500.0, 2500.0, 25000.0)
# The histogram compares amounts only: a narrow format (amounts below 2^15 in steps of 1/64) makes
# each comparison 23 bits wide instead of 65, about 40% of the preprocessing. The step must be below
# 2 cents so that rounding never moves a cent amount across an integer edge (19.99 encodes as
# 1279/64 = 19.984, not 20).
HIST_FMT = FixedFormat(k=22, f=6)
COLUMNS = ("amount", "hour", "abroad", "fraud")


def bank_data(sizes: tuple[int, ...] = SIZES, seed: int = 2027) -> list[np.ndarray]:
    """Per bank an ``(n, 4)`` array: amount (cents precision), hour 0..23, abroad 0/1, fraud 0/1.
    Fraud is likelier for large amounts, at night and abroad; the banks differ in their mix. Public
    synthetic data: numpy's generator is fine here, never for secrets."""
    rng = np.random.default_rng(seed)
    out = []
    for i, n in enumerate(sizes):
        amount = np.round(np.minimum(rng.lognormal(3.8 + 0.3 * i, 1.1, n), 20000.0), 2)
        hour = rng.integers(0, 24, n).astype(np.float64)
        abroad = (rng.random(n) < 0.08 + 0.06 * i).astype(np.float64)
        night = ((hour < 6) | (hour >= 23)).astype(np.float64)
        logit = -3.6 + 0.0015 * amount + 1.3 * night + 1.4 * abroad
        fraud = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float64)
        out.append(np.column_stack([amount, hour, abroad, fraud]))
    return out


def _with_complements(rows: np.ndarray) -> np.ndarray:
    """The bank's rows plus the local complements ``legit = 1 - fraud`` and ``home = 1 - abroad``: flags
    of the other groups, computed by each bank on its own rows (no communication)."""
    return np.column_stack([rows, 1.0 - rows[:, 3], 1.0 - rows[:, 2]])


async def bank_program(
    s: Session, banks: list[np.ndarray], edges: tuple[float, ...] = EDGES
) -> dict[str, Any]:
    """The SPMD program each bank runs; ``banks[s.party]`` is the only data a bank reads."""
    mine = _with_complements(banks[s.party])
    t = await share_table(s, mine)  # amount, hour, abroad, fraud, legit, home
    out: dict[str, Any] = {"transactions": await stats.count(s, t)}
    out["fraud_rate"] = float(np.asarray(await stats.mean(s, t.columns([3])))[0])
    out["mean_amount_fraud"] = float(np.asarray(await stats.mean_where(s, t.columns([0, 3]), 1))[0])
    out["mean_amount_legit"] = float(np.asarray(await stats.mean_where(s, t.columns([0, 4]), 1))[0])
    out["fraud_rate_abroad"] = float(np.asarray(await stats.mean_where(s, t.columns([3, 2]), 1))[0])
    out["fraud_rate_home"] = float(np.asarray(await stats.mean_where(s, t.columns([3, 5]), 1))[0])
    corr = await stats.correlation(s, t.columns([0, 2, 3]))
    assert corr is not None
    out["corr_amount_fraud"], out["corr_abroad_fraud"] = float(corr[0, 2]), float(corr[1, 2])
    out["corr_amount_abroad"] = float(corr[0, 1])
    amounts = await share_table(s, mine[:, 0], HIST_FMT)
    out["histogram"] = await stats.histogram(s, amounts, edges)
    return out


def plaintext(banks: list[np.ndarray], edges: tuple[float, ...] = EDGES) -> dict[str, Any]:
    """The same numbers on the union of the banks' rows (what no bank could compute alone)."""
    u = np.concatenate(banks)
    amount, abroad, fraud = u[:, 0], u[:, 2] == 1, u[:, 3] == 1
    corr = np.corrcoef(u[:, [0, 2, 3]], rowvar=False)
    return {
        "transactions": len(u),
        "fraud_rate": float(fraud.mean()),
        "mean_amount_fraud": float(amount[fraud].mean()),
        "mean_amount_legit": float(amount[~fraud].mean()),
        "fraud_rate_abroad": float(fraud[abroad].mean()),
        "fraud_rate_home": float(fraud[~abroad].mean()),
        "corr_amount_fraud": float(corr[0, 2]),
        "corr_abroad_fraud": float(corr[1, 2]),
        "corr_amount_abroad": float(corr[0, 1]),
        "histogram": np.histogram(amount, bins=np.asarray(edges))[0],
    }


TOLERANCE = 1e-3  # relative, or absolute below 1: what the fixed-point statistics promise


def close(got: Any, want: Any) -> bool:
    """Counts exactly, everything else within ``TOLERANCE``."""
    w = np.asarray(want)
    if w.dtype.kind in "iu":
        return bool(np.array_equal(np.asarray(got), w))
    g = np.asarray(got, dtype=np.float64)
    return bool(np.all(np.abs(g - w) <= TOLERANCE * np.maximum(1.0, np.abs(w))))


async def run_banks(
    banks: list[np.ndarray], preprocessing: str = "mascot", transport: str = "memory"
) -> tuple[dict[str, Any], float, float]:
    """All three banks in this process; returns bank 0's results, the seconds end to end (set-up
    included) and the megabytes exchanged."""
    import actors
    from actors.offline import Watermarks

    t0 = time.perf_counter()
    big = {k: 16384 for k in ("triple", "mask", "square", "bit", "random")}
    marks = Watermarks(triple=(16384, 32768), mask=(4096, 16384), batch=big)
    async with actors.local_cluster(
        3, transport=transport, preprocessing=preprocessing, watermarks=marks
    ) as c:
        print(f"  [{time.perf_counter() - t0:5.1f} s] parties up; computing", flush=True)
        results = await c.run(bank_program, banks)
        links = [int(getattr(p.links, "bytes_sent", 0)) for p in c.parties]
        sent = sum(c.hub.bytes_sent) if c.hub is not None else sum(links)
    if any(not _same(r, results[0]) for r in results):
        raise RuntimeError("the banks disagree on the results: this is a bug")
    return results[0], time.perf_counter() - t0, sent / 1e6


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dealer", action="store_true", help="INSECURE trusted-dealer preprocessing")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="transactions per bank")
    ap.add_argument("--tls", action="store_true", help="TLS 1.3 on loopback instead of memory links")
    args = ap.parse_args(argv)
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    sizes = tuple(int(v) for v in args.sizes.split(","))
    if len(sizes) != 3 or min(sizes) < 2:
        ap.error("--sizes takes three counts of at least 2")
    banks = bank_data(sizes)
    print("Three banks compute joint fraud statistics; each keeps its transactions to itself.")
    for name, rows in zip(BANKS, banks, strict=True):
        print(f"  {name:16} {len(rows):5} transactions (private)")
    preprocessing = "dealer" if args.dealer else "mascot"
    got, seconds, mb = trio.run(run_banks, banks, preprocessing, "tls" if args.tls else "memory")
    want = plaintext(banks)
    print()
    print(f"  {'statistic':22} {'secure (MPC)':>14} {'plaintext':>14}  match")
    ok = True
    for k, w in want.items():
        if k == "histogram":
            continue
        good = close(got[k], w)
        ok &= good
        fmt = "{:>14,}" if isinstance(w, int) else "{:>14.5f}"
        print(f"  {k:22} {fmt.format(got[k])} {fmt.format(w)}  {'yes' if good else 'NO'}")
    print()
    print("  amounts per bin (secure comparisons against public edges):")
    for lo, hi, g, w in zip(EDGES[:-1], EDGES[1:], got["histogram"], want["histogram"], strict=True):
        good = int(g) == int(w)
        ok &= good
        print(f"    [{lo:>8,.0f}, {hi:>8,.0f}) {int(g):6} {int(w):6}  {'yes' if good else 'NO'}")
    print()
    where = "dealer (INSECURE, for testing)" if args.dealer else "MASCOT"
    print(f"  end to end {seconds:.1f} s, {mb:,.1f} MB exchanged")
    print(f"  (3 parties, one process, {where} preprocessing)")
    print("  result:", "every statistic matches the plaintext computation" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
