"""Logistic regression end to end with one process per party: the example's model
(``examples/hospitals_logistic.py``: breast cancer, 3 hospitals, Böhning's method) trained by three
``actors.Party`` processes over TLS 1.3 on loopback, MASCOT from a cold start, as a deployment runs it.

Each child is one party: it reads its config (``actors.cluster.planned_configs``: a fresh CA and
certificates, pools with the plan's batch sizes), waits for its MASCOT set-up, hands the plan over to
its offline service (``OfflineService.stop_refills(need)``: exactly the plan is made, while the
program runs; ``--stock``: made first, then the program, so the offline and online times separate),
and runs the example's program with ``comparison="auto"`` (the default; ``--comparison field``). The
plan is a dry run on the INSECURE dealer in the parent, before any clock starts.

Printed per party: seconds end to end (from the process start: config, TLS, MASCOT set-up and the
preprocessing included), set-up, bytes sent, peak RSS, CPU seconds; then the test accuracy against
scikit-learn's ``LogisticRegression()`` and the largest coefficient difference. The parties must agree
on the model (checked).

    python benchmarks/logreg_bench.py [--iterations 5] [--stock] [--comparison auto] [--rows 10000]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import trio  # noqa: E402
from compare_bench import cpu_seconds, hwm_mb, launch, quiet_logs, report, run_child  # noqa: E402

BATCH = 4096  # the example's plan batch (``examples/hospitals_logistic.PLAN_BATCH``)


def example() -> Any:
    path = ROOT / "examples" / "hospitals_logistic.py"
    spec = importlib.util.spec_from_file_location("hospitals_logistic", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["hospitals_logistic"] = mod
    spec.loader.exec_module(mod)
    return mod


def load(ex: Any, seed: int, rows: int) -> Any:
    """The example's breast cancer split, or (``rows > 0``) scikit-learn's ``make_classification``
    with ``rows`` training rows and 20 features (10 informative), split and dealt as the example's."""
    if not rows:
        return ex.load_hospitals(seed)
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    x, y = make_classification(n_samples=rows * 5 // 4, n_features=20, n_informative=10, random_state=seed)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    order = np.random.default_rng(seed).permutation(len(x_tr))
    cuts = np.cumsum(np.round(np.asarray(ex.SHARES[:-1]) * len(x_tr)).astype(int))
    parts = [(x_tr[idx], y_tr[idx]) for idx in np.split(order, cuts)]
    return ex.HospitalData(parts, x_tr, y_tr, x_te, y_te, [f"x{i}" for i in range(x.shape[1])])


async def party_main(job: dict[str, Any], party: int) -> None:
    """``--child i``: party ``i`` in its own process; only its own rows are loaded into the program."""
    import actors
    from protocols.apps import logistic as lg

    ex = example()
    t0 = time.monotonic()
    data = load(ex, job["seed"], job["rows"])
    parts = [data.parts[i] if i == party else None for i in range(len(data.parts))]
    cfg = lg.NewtonConfig(iterations=job["iterations"])
    async with actors.Party(job["configs"][party]) as p:
        off = p.offline
        assert off is not None, "the config's preprocessing must be MASCOT"
        await off.wait_ready()
        t_setup = time.monotonic()
        if job["stock"]:
            await off.wait_for(job["need"])
            off.stop_refills()
        else:
            off.stop_refills(job["need"])
        t_ready = time.monotonic()
        model, _ = await p.run(
            ex.hospital_program, parts, cfg, session=job["session"], options={"comparison": job["comparison"]}
        )
        t_end = time.monotonic()
        rec = {
            "party": party,
            "e2e": t_end - t0,
            "setup": t_setup - t0,
            "offline": t_ready - t_setup if job["stock"] else None,
            "sent": p.links.bytes_sent,
            "rss": hwm_mb(),
            "cpu": cpu_seconds(),
            "coef": [float(v) for v in model.coef],
            "intercept": float(model.intercept),
            "made": dict(off.generated),
        }
        await report(rec)


def child(argv: list[str]) -> int:
    return run_child(argv, lambda who, job: trio.run(party_main, job, int(who)))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--child" in argv:
        return child(argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--stock", action="store_true", help="make the plan first, then run the program")
    ap.add_argument("--comparison", choices=("auto", "field"), default="auto")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--timeout", type=float, default=3600.0)
    ap.add_argument("--rows", type=int, default=0, help="synthetic data with this many training rows")
    args = ap.parse_args(argv)
    quiet_logs()
    from actors.cluster import planned_configs
    from actors.plan import preprocessing_plan
    from protocols.apps import logistic as lg
    from protocols.apps import regression as rg

    ex = example()
    data = load(ex, args.seed, args.rows)
    cfg = lg.NewtonConfig(iterations=args.iterations)
    t = time.perf_counter()
    need = trio.run(
        lambda: preprocessing_plan(ex.hospital_program, 3, data.parts, cfg, comparison=args.comparison)
    )
    when = "made first" if args.stock else "made while the program runs"
    what = "breast cancer" if not args.rows else "synthetic data (make_classification)"
    shape = f"{len(data.y_train):,} training rows, {data.x_train.shape[1]} features"
    print(f"logistic regression, {what} ({shape}), 3 parties in 3 processes,")
    print(f"TLS on loopback, MASCOT p127, {args.iterations} iterations, comparison={args.comparison},")
    print(f"the plan {when} (the plan: {time.perf_counter() - t:.1f} s on the dealer, not timed)")
    with tempfile.TemporaryDirectory(prefix="spdz-logreg-bench-") as tmp:
        root = Path(tmp)
        paths = planned_configs(root / "cluster", 3, need, BATCH, ahead=False)
        job = {
            "configs": [str(p) for p in paths],
            "session": f"logreg-bench-{uuid.uuid4().hex[:8]}",
            "need": need,
            "iterations": args.iterations,
            "stock": args.stock,
            "comparison": args.comparison,
            "seed": args.seed,
            "rows": args.rows,
        }
        recs = sorted(
            launch(job, ["0", "1", "2"], root, args.timeout, Path(__file__).resolve()),
            key=lambda r: r["party"],
        )
    head = ("party", "end to end", "set-up", "offline", "MB sent", "peak RSS MB", "CPU s")
    print("".join(f"{h:>12}" for h in head))
    for r in recs:
        off = "" if r["offline"] is None else f"{r['offline']:.1f}"
        cells = (r["party"], f"{r['e2e']:.1f}", f"{r['setup']:.1f}", off, f"{r['sent'] / 1e6:,.0f}")
        cells += (f"{r['rss']:,.0f}", f"{r['cpu']:.1f}")
        print("".join(f"{c:>12}" for c in cells))
    if any(r["coef"] != recs[0]["coef"] or r["intercept"] != recs[0]["intercept"] for r in recs):
        print("THE PARTIES DISAGREE ON THE MODEL")
        return 1
    model = rg.LogisticModel(np.asarray(recs[0]["coef"]), recs[0]["intercept"])
    sk, sc = ex.sklearn_model(data)
    acc, acc_sk = ex.accuracy(model, data.x_test, data.y_test), ex.accuracy(sk, data.x_test, data.y_test)
    drift = float(np.max(np.abs((model.coef - sk.coef) * sc.scale_)))
    print(f"test accuracy {acc:.2%} (scikit-learn {acc_sk:.2%}); largest coefficient difference {drift:.2f}")
    made = recs[0]["made"]
    print("MASCOT made (party 0): " + ", ".join(f"{v:,} {k}s" for k, v in sorted(made.items()) if v))
    return 0 if abs(acc - acc_sk) <= 0.01 + 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())
