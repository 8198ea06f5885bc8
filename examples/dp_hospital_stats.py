"""Three hospitals publish differentially private statistics about their patients, computed jointly.

Each hospital keeps its own patient records (synthetic, from a fixed seed: age in years, length of
stay in days). Together they release the number of patients, the mean age and mean length of stay,
and a histogram of ages, with noise added inside the MPC before anything is opened: no hospital sees
another's records or counts, and what is published is differentially private for every patient
(neighbouring datasets: one patient's record added or removed). The whole release costs
``epsilon = 1``, ``delta = 1e-9``: each of the three calls gets ``epsilon = 0.56`` at ``delta =
1e-9``, and the accountant composes the three to 0.99 (0.98 with the binomial), which it prints.
Adding epsilons up, the textbook bound, would leave each call only 1/3. The session holds the
program to the declared total (``protocols.dp.allowance``): a call beyond it would be refused.

Public clipping bounds (every hospital clamps its own records to them before summing): age in
``[0, 100]``, stay in ``[0, 30]`` days. A stay of 45 days counts as 30: that bias is the price of a
bounded sensitivity, and it is why the DP mean of the stays sits a little below the exact one.

Every DP figure is printed beside the exact one (which no hospital could compute), the error, and the
standard deviation of the noise that the calibration predicts. MASCOT preprocessing by default,
``--dealer`` for the INSECURE test dealer.

    python examples/dp_hospital_stats.py [--dealer] [--sizes 2000,3500,1500] [--mechanism gaussian]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import trio  # noqa: E402

from protocols.apps import stats  # noqa: E402
from protocols.dp import DP  # noqa: E402
from protocols.dp import apps as dpa  # noqa: E402
from protocols.dp.accounting import Accountant  # noqa: E402
from protocols.dp.allowance import Allowance, Declared  # noqa: E402
from protocols.online import Session  # noqa: E402

HOSPITALS = ("St Mary's", "General", "Children's & Adults")
SIZES = (2000, 3500, 1500)
EPSILON, DELTA = 1.0, 1e-9
PER_CALL = 0.56  # count, means, histogram: composed by the accountant, 0.99 (binomial 0.98)
BOUNDS = [(0.0, 100.0), (0.0, 30.0)]  # age, length of stay
EDGES = (0.0, 20.0, 40.0, 60.0, 80.0, 100.0)
SEED = 2026


def hospital_data(sizes: tuple[int, ...] = SIZES, seed: int = SEED) -> list[np.ndarray]:
    """Each hospital's records, ``(n, 2)``: age, length of stay (a few long stays above the bound)."""
    rng = np.random.default_rng(seed)
    out = []
    for i, n in enumerate(sizes):
        age = np.clip(rng.normal(50 + 8 * i, 20, n), 0, 99.5).round(1)
        stay = rng.exponential(3 + i, n).round(1)
        out.append(np.column_stack([age, stay]))
    return out


def per_call(mechanism: str) -> DP:
    return DP(epsilon=PER_CALL, delta=DELTA, mechanism=mechanism)


async def hospital_program(
    s: Session, hospitals: list[np.ndarray], mechanism: str = "gaussian"
) -> dict[str, Any]:
    """The SPMD program each hospital runs; ``hospitals[s.party]`` is the only data it reads."""
    s.privacy = Allowance(Declared("patients", EPSILON, DELTA, mechanism))
    rows = hospitals[s.party]
    dp = per_call(mechanism)
    out = {
        "count": await stats.count(s, rows, dp=dp),
        "means": await stats.mean(s, rows, dp=dp, bounds=BOUNDS),
        "histogram": await stats.histogram(s, rows, EDGES, column=0, dp=dp),
    }
    acc = Accountant()
    for m in s.privacy.spent:
        acc.add(m)
    out["epsilon"] = acc.epsilon(DELTA)
    return out


def predicted(n: int, means: np.ndarray, total: int, mechanism: str) -> dict[str, Any]:
    """The noise's standard deviations as calibrated, for ``n`` parties: the count's and the bins'
    exactly; the means' to first order, ``sqrt(var S + m^2 var N) / N`` at the exact ``N = total``
    and means ``m``."""
    dp = per_call(mechanism)
    count = dpa.predicted_std([dpa.Entry(1.0, count=True)], dp, n)[0]
    entries = [dpa.Entry(1.0, count=True)] + [dpa.Entry(dpa.magnitude(b)) for b in BOUNDS]
    sd = dpa.predicted_std(entries, dp, n)
    hist = dpa.predicted_std([dpa.Entry(1.0, count=True)], dp, n, touches=1)[0]
    return {"count": count, "means": np.sqrt(sd[1:] ** 2 + means**2 * sd[0] ** 2) / total, "histogram": hist}


async def run_hospitals(
    hospitals: list[np.ndarray], preprocessing: str = "mascot", mechanism: str = "gaussian"
) -> tuple[dict[str, Any], float, float]:
    """All three hospitals in this process; hospital 0's results, seconds end to end, MB exchanged."""
    import actors
    from actors.offline import Watermarks
    from actors.plan import preprocessing_plan

    need = await preprocessing_plan(hospital_program, 3, hospitals, mechanism)
    marks = Watermarks.for_plan(need)
    t0 = time.perf_counter()
    async with actors.local_cluster(3, preprocessing=preprocessing, watermarks=marks) as c:
        await c.stock(need)
        results = await c.run(hospital_program, hospitals, mechanism)
        sent = sum(c.hub.bytes_sent) if c.hub is not None else 0
    for r in results[1:]:
        if r["count"] != results[0]["count"] or not np.array_equal(r["means"], results[0]["means"]):
            raise RuntimeError("the hospitals disagree on the results: this is a bug")
    return results[0], time.perf_counter() - t0, sent / 1e6


def report(got: dict[str, Any], hospitals: list[np.ndarray], mechanism: str) -> list[str]:
    union = np.concatenate(hospitals)
    n = len(union)
    means = union.mean(axis=0)
    hist = np.histogram(union[:, 0], bins=EDGES)[0]
    sd = predicted(3, means, n, mechanism)
    lines = [f"  {'statistic':28} {'exact':>10} {'DP':>10} {'error':>8} {'predicted sd':>13}"]

    def row(name: str, exact: float, dp: float, sdv: float, digits: int = 2) -> None:
        d = digits
        lines.append(f"  {name:28} {exact:>10.{d}f} {dp:>10.{d}f} {dp - exact:>+8.{d}f} {sdv:>13.{d}f}")

    row("patients", n, got["count"], sd["count"], 0)
    row("mean age (years)", means[0], got["means"][0], sd["means"][0])
    row("mean stay (days)", means[1], got["means"][1], sd["means"][1])
    for j in range(len(EDGES) - 1):
        row(f"age {EDGES[j]:.0f}-{EDGES[j + 1]:.0f}", hist[j], got["histogram"][j], sd["histogram"], 0)
    clamped = np.clip(union[:, 1], *BOUNDS[1]).mean()
    lines.append(f"  (stays clamped to 30 days: exact mean {clamped:.2f}, what the DP mean estimates)")
    lines.append(
        f"  privacy: epsilon {got['epsilon']:.3f} composed by the accountant at delta {DELTA:g} "
        f"(declared: {EPSILON:g})"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dealer", action="store_true", help="INSECURE trusted-dealer preprocessing")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="patients per hospital")
    ap.add_argument("--mechanism", default="gaussian", choices=("gaussian", "binomial"))
    args = ap.parse_args(argv)
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    try:
        sizes = tuple(int(v) for v in args.sizes.split(","))
    except ValueError:
        ap.error(f"--sizes takes three counts, e.g. 2000,3500,1500 (got {args.sizes!r})")
    if len(sizes) != 3 or min(sizes) < 1 or max(sizes) > 10_000_000:
        ap.error("--sizes takes three counts from 1 to 10,000,000")
    hospitals = hospital_data(sizes)
    print(f"Three hospitals publish DP statistics (epsilon {EPSILON:g}, delta {DELTA:g} in total).")
    for name, rows in zip(HOSPITALS, hospitals, strict=True):
        print(f"  {name:20} {len(rows):>9,} patients (private)")
    preprocessing = "dealer" if args.dealer else "mascot"
    got, seconds, mb = trio.run(run_hospitals, hospitals, preprocessing, args.mechanism)
    print()
    print("\n".join(report(got, hospitals, args.mechanism)))
    print()
    where = "dealer (INSECURE, for testing)" if args.dealer else "MASCOT"
    print(f"  end to end {seconds:.1f} s, {mb:,.1f} MB exchanged ({args.mechanism} noise)")
    print(f"  (3 parties, one process, {where} preprocessing)")
    ok = got["epsilon"] <= EPSILON and all(math.isfinite(v) for v in got["means"])
    print("  result:", "released within the declared privacy budget" if ok else "OVER BUDGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
