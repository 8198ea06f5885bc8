"""Three hospitals train one logistic regression on their joint patients, none seeing another's records.

Data: the Wisconsin diagnostic breast cancer data set shipped with scikit-learn (569 tumours, 30
features computed from a digitized image of a fine needle aspirate, label: malignant or benign). A
fixed, stratified 80/20 split gives a training set, dealt out to three hospitals in uneven shares
(rows: a horizontal split), and a held-out test set on which every model below is scored.

What runs, all three parties in this one process (``actors.local_cluster``):

1. **Standardization, securely**: the per-feature mean and (population) standard deviation of the
   union of the hospitals' rows are computed in MPC from each hospital's own sums and revealed (that
   is what this step reveals: the number of training rows and 2 x 30 numbers about the union). Each
   hospital then standardizes its own rows locally, as scikit-learn's ``StandardScaler`` would.
2. **Training, securely**: Böhning's fixed-Hessian Newton method (``protocols.apps.logistic``): each
   hospital computes ``X_j^T X_j``, ``X_j^T y_j`` and its own model locally; the bound
   ``X^T X / 4 + I / C`` is factored once in MPC; the start combines the hospitals' own models; every
   iteration after the first evaluates the sigmoid (a 5-knot spline, error 0.041) of every row's
   secret score. The iteration count is public; only the final model is revealed.
3. **The reference**: scikit-learn's ``LogisticRegression()`` (L2, C = 1, to convergence) on the same
   split, standardized the same way: the accuracies and the largest coefficient difference.

Preprocessing: MASCOT by default (the three parties' offline services), ``--dealer`` for the
INSECURE test dealer (fast, for trying things out). The sessions run with ``comparison="auto"``:
the sigmoid's comparisons on binary material, and the training's truncations masked with ranged
randoms (every hospital's range-proven share of the mask: rounding within 2 units of ``2^-20``)
(``--comparison field`` for the field path). The pools are sized to the program's plan (a dry run on
the dealer, before the clock) and made while it runs. Cost with MASCOT (``docs/models.md``): the
summaries and the factorization about 8,600 triples and 1,600 ranged randoms, then per iteration and
row 60 owned products (``X w`` and ``X^T p``: Beaver products whose mask the row's hospital knows, a
third of a triple each), 2 triples, 3 daBits, a loose edaBit and 350 AND triples: 4 iterations (from
the warm start: each hospital's own fit, combined), within 1 point of scikit-learn, in about a minute
on a 2-core machine. ``--tls`` runs the parties over real TLS 1.3 on loopback instead of the
in-memory transport.

    python examples/hospitals_logistic.py [--dealer] [--iterations 10] [--sigmoid spline] [--tls]
                                          [--comparison auto]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import trio  # noqa: E402

from protocols.apps import logistic as lg  # noqa: E402
from protocols.apps import regression as rg  # noqa: E402
from protocols.online import Session  # noqa: E402

HOSPITALS = ("St Mary's", "Riverside", "Northgate")
SHARES = (0.45, 0.20, 0.35)  # of the training rows, per hospital
SEED = 42
# scikit-learn's defaults (C = 1) and 10 accelerated Böhning iterations: within 1 point of
# scikit-learn's test accuracy on this split (tests/test_logistic.py); iterations are what the time
# goes into.
CONFIG = lg.NewtonConfig()
# MASCOT batches for the planned pools (Watermarks.for_plan): 4,096 triples or bits at a time, about
# what this class of machine makes fastest
PLAN_BATCH = 4096


@dataclass(frozen=True)
class HospitalData:
    """The training rows per hospital, the pooled training set (for scikit-learn's reference only)
    and the held-out test set."""

    parts: list[tuple[np.ndarray, np.ndarray]]
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    features: list[str]


def load_hospitals(seed: int = SEED, shares: tuple[float, ...] = SHARES) -> HospitalData:
    """Breast cancer data, a stratified 80/20 split, the training rows dealt out to the hospitals."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    bunch = load_breast_cancer()
    x, y = bunch.data.astype(np.float64), bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    order = np.random.default_rng(seed).permutation(len(x_tr))
    cuts = np.cumsum(np.round(np.asarray(shares[:-1]) * len(x_tr)).astype(int))
    parts = [(x_tr[idx], y_tr[idx]) for idx in np.split(order, cuts)]
    return HospitalData(parts, x_tr, y_tr, x_te, y_te, list(bunch.feature_names))


async def hospital_program(
    s: Session, parts: list[tuple[np.ndarray, np.ndarray]], config: lg.NewtonConfig, show: Any = None
) -> tuple[rg.LogisticModel, rg.Standardizer]:
    """The SPMD program every hospital runs; ``parts[s.party]`` is the only data a party reads.
    Reveals the standardization (per-feature mean and deviation of the union) and the final model."""
    x, y = parts[s.party]
    say = show if show is not None and s.party == 0 else None
    scaler = await rg.standardizer(s, x, clip=config.clip, ddof=config.ddof)
    if say:
        say("standardization done (means and deviations revealed)")
    progress = (lambda e: say(f"iteration {e}/{config.iterations} done")) if say else None
    model = await rg.logistic_regression(s, x, y, config=config, scaler=scaler, progress=progress)
    assert isinstance(model, rg.LogisticModel)
    return model, scaler


def sklearn_model(data: HospitalData) -> tuple[rg.LogisticModel, Any]:
    """scikit-learn's ``LogisticRegression()`` on the union of the training rows, standardized by
    ``StandardScaler``: the model in original units and the scaler."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler().fit(data.x_train)
    clf = LogisticRegression().fit(sc.transform(data.x_train), data.y_train)
    coef = clf.coef_[0] / sc.scale_
    return rg.LogisticModel(coef, float(clf.intercept_[0] - coef @ sc.mean_)), sc


def accuracy(model: rg.LogisticModel, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(model.predict(x) == y))


def _bytes_sent(c: Any) -> int:
    if c.hub is not None:
        return int(sum(c.hub.bytes_sent))
    return int(sum(int(getattr(p.links, "bytes_sent", 0)) for p in c.parties))


@dataclass
class SecureRun:
    model: rg.LogisticModel
    scaler: rg.Standardizer
    seconds_total: float
    seconds_setup: float
    megabytes: float
    generated: dict[str, int]
    seconds_plan: float = 0.0


async def train_securely(
    data: HospitalData,
    config: lg.NewtonConfig,
    preprocessing: str = "mascot",
    transport: str = "memory",
    verbose: bool = True,
    comparison: str = "auto",
) -> SecureRun:
    """Start three parties, train, stop: the clock covers everything (MASCOT set-up included).
    ``verbose`` prints progress lines (phases, iterations, MASCOT output every 10 s).

    ``comparison="auto"`` (the default here): the sigmoid's comparisons in the binary domain and
    the training's truncations masked with ranged randoms (``rounds.wide_rounding``), the
    standardization's with a loose edaBit high part (``Session.truncation_domain``); ``"field"``:
    everything on field bits and triples, as before. With MASCOT the pools are sized to the
    program's plan (``actors.plan.preprocessing_plan``: a dry run on the INSECURE dealer, data-
    independent, before the clock starts; its time is ``seconds_plan``)."""
    import actors
    from actors.offline import Watermarks
    from actors.plan import preprocessing_plan

    t_plan = time.perf_counter()
    marks, need = None, None
    if preprocessing == "mascot":
        need = await preprocessing_plan(hospital_program, 3, data.parts, config, comparison=comparison)
        marks = Watermarks.for_plan(need, PLAN_BATCH, ahead=False)  # made while the program runs
    t0 = time.perf_counter()
    t_plan = t0 - t_plan

    def show(msg: str) -> None:
        if verbose:
            print(f"  [{time.perf_counter() - t0:6.1f} s] {msg}", flush=True)

    async with actors.local_cluster(
        3,
        transport=transport,
        preprocessing=preprocessing,
        watermarks=marks,
        session_options={"comparison": comparison},
    ) as c:
        t_setup = time.perf_counter() - t0
        if preprocessing == "mascot":
            show("MASCOT set-up done (base OTs, MAC keys); preprocessing now runs as needed")
        if need:  # make exactly the plan (no refills past it) while the program runs
            await c.stock(need, wait=False)
        ticker_done = trio.Event()

        async def ticker() -> None:
            while not ticker_done.is_set():
                with trio.move_on_after(10.0):
                    await ticker_done.wait()
                off = c.parties[0].offline
                if off is not None and not ticker_done.is_set():
                    made = off.metrics()["generated"]
                    show("MASCOT so far: " + ", ".join(f"{v:,} {k}s" for k, v in sorted(made.items()) if v))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            results = await c.run(hospital_program, data.parts, config, show)
            ticker_done.set()
        megabytes = _bytes_sent(c) / 1e6
        off = c.parties[0].offline
        generated = dict(off.metrics()["generated"]) if off is not None else {}
    total = time.perf_counter() - t0
    models = [r[0] for r in results]
    if any(not np.array_equal(m.coef, models[0].coef) for m in models):
        raise RuntimeError("the hospitals disagree on the model: this is a bug")
    return SecureRun(results[0][0], results[0][1], total, t_setup, megabytes, generated, t_plan)


def report(
    data: HospitalData, config: lg.NewtonConfig, run: SecureRun, preprocessing: str
) -> dict[str, float]:
    """Print the accuracies side by side; return them (for tests and the benchmark)."""
    sk, sc = sklearn_model(data)
    acc = {
        "secure": accuracy(run.model, data.x_test, data.y_test),
        "sklearn": accuracy(sk, data.x_test, data.y_test),
    }
    drift = float(np.max(np.abs((run.model.coef - sk.coef) * sc.scale_)))
    print()
    print(f"  held-out test set: {len(data.y_test)} tumours; accuracy")
    rows = [
        (f"secure (MPC), {config.iterations} iterations, {config.sigmoid} sigmoid", acc["secure"]),
        ("scikit-learn LogisticRegression() (to convergence)", acc["sklearn"]),
    ]
    for label, value in rows:
        print(f"    {label:55} {value:7.2%}")
    print(f"  largest coefficient difference to scikit-learn's (standardized units): {drift:.2f}")
    print()
    where = "dealer (INSECURE, for testing)" if preprocessing == "dealer" else "MASCOT"
    print(f"  end to end {run.seconds_total:.1f} s (3 parties, one process, {where} preprocessing,")
    print(f"  set-up {run.seconds_setup:.1f} s included); {run.megabytes:,.0f} MB exchanged")
    if run.seconds_plan:
        print(f"  the pools' plan (a dry run on the dealer, before the clock): {run.seconds_plan:.1f} s")
    if run.generated:
        made = ", ".join(f"{v:,} {k}s" for k, v in sorted(run.generated.items()) if v)
        print(f"  MASCOT made: {made}")
    return acc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dealer", action="store_true", help="INSECURE trusted-dealer preprocessing")
    ap.add_argument("--sigmoid", choices=("spline", "piecewise", "exact"), default=CONFIG.sigmoid)
    ap.add_argument("--iterations", type=int, default=CONFIG.iterations)
    ap.add_argument("--seed", type=int, default=SEED, help="train/test split and dealing of the rows")
    ap.add_argument("--tls", action="store_true", help="TLS 1.3 on loopback instead of memory links")
    ap.add_argument(
        "--comparison",
        choices=("auto", "field"),
        default="auto",
        help="auto: binary comparisons, loose edaBits in truncation masks; field: field bits only",
    )
    args = ap.parse_args(argv)
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # errors only
    config = lg.NewtonConfig(iterations=args.iterations, sigmoid=args.sigmoid)
    data = load_hospitals(args.seed)
    print("Three hospitals train a logistic regression on breast cancer data (scikit-learn's copy of")
    print("the Wisconsin diagnostic data set); each keeps its patients' rows to itself.")
    for name, (x, _) in zip(HOSPITALS, data.parts, strict=True):
        print(f"  {name:10} {len(x):4} patients, {x.shape[1]} features (private)")
    print(f"  Böhning's method: {config.iterations} iterations, C = {config.C:g}, {config.sigmoid} sigmoid")
    print()
    preprocessing = "dealer" if args.dealer else "mascot"
    transport = "tls" if args.tls else "memory"
    run = trio.run(train_securely, data, config, preprocessing, transport, True, args.comparison)
    acc = report(data, config, run, preprocessing)
    ok = abs(acc["secure"] - acc["sklearn"]) <= 0.01 + 1e-9
    print("  result:", "within 1 point of scikit-learn" if ok else "MORE THAN 1 POINT FROM SCIKIT-LEARN")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
