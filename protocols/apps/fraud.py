"""Joint fraud statistics of several banks: the data, the secure program and the plaintext reference.

Each bank holds its own card transactions (synthetic, from a fixed seed: amount, hour of day,
whether the card was used abroad, whether the transaction was confirmed fraud). Together, in one
secure session, they compute what none could alone, and reveal only these numbers:

* the number of transactions and the joint fraud rate;
* the mean amount of fraudulent and of legitimate transactions (``mean_where``: the number of frauds
  itself is not revealed by that step, though the rate and the count together give it);
* the fraud rate abroad and at home;
* the correlations between amount, use abroad and fraud;
* a histogram of the amounts (each bank counts its own per bin; the row-level program compares every
  amount against the public bin edges securely).

Each bank's rows stay owner-private: it summarises them locally and only the summaries enter the
MPC (``pooled``), so no bank learns another's transaction count, and the cost does not depend on it.
``bank_program_rows`` is the same program on the row-level path (every transaction secret-shared,
the transaction counts public), for comparison. ``plaintext`` computes the same numbers on the
union, which no bank could.
Used by ``examples/bank_fraud_stats.py`` and by ``spdz demo``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..fixedpoint import FixedFormat
from ..online import Session
from ..private import owned
from . import pooled, stats
from .table import share_table

BANKS = ("Northbank", "Harbour Savings", "Crown Mutual")
SIZES = (120, 80, 100)
EDGES = (0.0, 20.0, 100.0, 500.0, 2500.0, 25000.0)
# The histogram compares amounts only: a narrow format (amounts below 2^15 in steps of 1/64) makes
# each comparison 23 bits wide instead of 65, about 40% of the preprocessing. The step must be below
# 2 cents so that rounding never moves a cent amount across an integer edge (19.99 encodes as
# 1279/64 = 19.984, not 20).
HIST_FMT = FixedFormat(k=22, f=6)
COLUMNS = ("amount", "hour", "abroad", "fraud")
TOLERANCE = 1e-3  # relative, or absolute below 1: what the fixed-point statistics promise


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
    """The SPMD program each bank runs; ``banks[s.party]`` is the only data a bank reads.

    Each bank's rows stay owner-private (``private.owned``): every statistic is computed from the
    banks' local summaries, combined in MPC (``pooled``), so the cost does not depend on the number
    of transactions and no bank learns another's transaction count."""
    rows = await owned(s, _with_complements(banks[s.party]))  # amount, hour, abroad, fraud, legit, home
    return await _statistics(s, rows, lambda cols: pooled.select(rows, cols), rows_of=None, edges=edges)


async def bank_program_rows(
    s: Session, banks: list[np.ndarray], edges: tuple[float, ...] = EDGES
) -> dict[str, Any]:
    """The same statistics on the row-level path: every transaction secret-shared, each statistic
    computed on the joint secret table (``N (m + 1)`` secure comparisons for the histogram alone).
    Kept for comparison (``benchmarks/local_bench.py``) and for data that is already joint."""
    mine = _with_complements(banks[s.party])
    t = await share_table(s, mine)
    amounts = await share_table(s, mine[:, 0], HIST_FMT)
    return await _statistics(s, t, t.columns, rows_of=amounts, edges=edges)


async def _statistics(
    s: Session, data: Any, cols: Any, rows_of: Any, edges: tuple[float, ...]
) -> dict[str, Any]:
    out: dict[str, Any] = {"transactions": await stats.count(s, data)}
    out["fraud_rate"] = float(np.asarray(await stats.mean(s, cols([3])))[0])
    out["mean_amount_fraud"] = float(np.asarray(await stats.mean_where(s, cols([0, 3]), 1))[0])
    out["mean_amount_legit"] = float(np.asarray(await stats.mean_where(s, cols([0, 4]), 1))[0])
    out["fraud_rate_abroad"] = float(np.asarray(await stats.mean_where(s, cols([3, 2]), 1))[0])
    out["fraud_rate_home"] = float(np.asarray(await stats.mean_where(s, cols([3, 5]), 1))[0])
    corr = await stats.correlation(s, cols([0, 2, 3]))
    assert corr is not None
    out["corr_amount_fraud"], out["corr_abroad_fraud"] = float(corr[0, 2]), float(corr[1, 2])
    out["corr_amount_abroad"] = float(corr[0, 1])
    out["histogram"] = await stats.histogram(s, rows_of if rows_of is not None else cols([0]), edges)
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


def close(got: Any, want: Any) -> bool:
    """Counts exactly, everything else within ``TOLERANCE``."""
    w = np.asarray(want)
    if w.dtype.kind in "iu":
        return bool(np.array_equal(np.asarray(got), w))
    g = np.asarray(got, dtype=np.float64)
    return bool(np.all(np.abs(g - w) <= TOLERANCE * np.maximum(1.0, np.abs(w))))


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two parties' results are identical (they must be: every party gets the same outputs)."""
    return a.keys() == b.keys() and all(np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a)


def report(
    got: dict[str, Any], want: dict[str, Any], edges: tuple[float, ...] = EDGES
) -> tuple[list[str], bool]:
    """The secure results beside the plaintext ones, one line each, and whether all of them match."""
    lines = [f"  {'statistic':22} {'secure (MPC)':>14} {'plaintext':>14}  match"]
    ok = True
    for k, w in want.items():
        if k == "histogram":
            continue
        good = close(got[k], w)
        ok &= good
        fmt = "{:>14,}" if isinstance(w, int) else "{:>14.5f}"
        lines.append(f"  {k:22} {fmt.format(got[k])} {fmt.format(w)}  {'yes' if good else 'NO'}")
    lines.append("")
    lines.append("  amounts per bin:")
    for lo, hi, g, w in zip(edges[:-1], edges[1:], got["histogram"], want["histogram"], strict=True):
        good = int(g) == int(w)
        ok &= good
        lines.append(
            f"    [{lo:>8,.0f}, {hi:>8,.0f})  {int(g):>11,}  {int(w):>11,}  {'yes' if good else 'NO'}"
        )
    return lines, ok
