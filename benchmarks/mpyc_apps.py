"""The MPyC side of ``apps_bench.py``: the same secure computations, run by MPyC (lschoe/mpyc).

Why a separate program: MPyC is one process per party talking TCP, configured from its own command
line, and it lives in its own virtual environment (``benchmarks/.venv-mpyc``, made by apps_bench) so
that this project never depends on it. apps_bench starts three local parties and reads party 0's
standard output: one JSON object per line, one line per measurement.

What MPyC runs is not what we run: Shamir secret sharing with an honest majority (threshold 1 of 3),
secure against *passive* (semi-honest) adversaries only, randomness from PRSS (no preprocessing at
all). Ours is SPDZ: malicious security with abort against n - 1 corrupt parties, paid for in MACs,
their checks and the preprocessing. The figures side by side show the price of that difference plus
the implementations' own; they are not a like-for-like race.

Same computations: the same vector sizes and (seeded) values as apps_bench, on MPyC's vectorized
secure NumPy arrays, the operation and the output of its result timed on party 0 after a
synchronizing exchange. Types: our ``SecretInt(k)`` compares ``k + 1``-bit differences exactly over
the whole ``k``-bit range, so the MPyC side uses ``SecInt(k + 1)`` (MPyC's ``secint32`` assumes
``|x - y| < 2^31``); fixed point is ``SecFxp(64, 20)`` like our ``FixedFormat(k=64, f=20)``; the
statistical security parameter is 40 bits like ours (``-K 40``; MPyC's default is 30).

    python mpyc_apps.py -P localhost:P0 -P localhost:P1 -P localhost:P2 -I <i> -K 40 --no-log \\
        ops --size 10000 --fn-size 1000 --repeat 3 [--only int32]
    python mpyc_apps.py ... -I <i> ... train --data hospitals.npz --lr 1,2,4 --clip 8
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

# name -> (data kind, MPyC type (bits, frac bits or None), operation); names as in apps_bench.OPS
Op = Callable[[Any, Any], Any]
OPS: dict[str, tuple[str, tuple[int, int | None], Op]] = {
    "compare int32 x < y": ("int32", (33, None), lambda x, y: x < y),
    "compare int64 x < y": ("int64", (65, None), lambda x, y: x < y),
    "equality int32 x == y": ("int32", (33, None), lambda x, y: x == y),
    "fixed-point x < y": ("fix", (64, 20), lambda x, y: x < y),
    "fixed-point mul x * y": ("fix", (64, 20), lambda x, y: x * y),
    "fixed-point x * 0.3": ("fix", (64, 20), lambda x, y: x * 0.3),
    # MPyC 0.11's fixed-point 1/x assumes f = l/2 (with f = 20 and l = 64 it returns 0): 64 bits, f = 32
    "reciprocal 1 / y": ("fix", (64, 32), lambda x, y: 1 / y),
}
MISSING = {"sqrt": "no vectorized sqrt", "exp": "no vectorized exp", "sigmoid": "no vectorized sigmoid"}
EXPECT: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "compare int32 x < y": lambda a, b: a < b,
    "compare int64 x < y": lambda a, b: a < b,
    "equality int32 x == y": lambda a, b: a == b,
    "fixed-point x < y": lambda a, b: a < b,
    "fixed-point mul x * y": lambda a, b: a * b,
    "fixed-point x * 0.3": lambda a, b: a * 0.3,
    "reciprocal 1 / y": lambda a, b: 1 / b,
}


def _data(kind: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The values apps_bench's ``_prog`` uses (same seed, same draws)."""
    rng = np.random.default_rng(2024)  # public benchmark data, not secrets
    if kind == "fix":
        return rng.uniform(-20, 20, size), rng.uniform(0.5, 1000, size)
    k = 32 if kind == "int32" else 64
    a, b = (rng.integers(-(2 ** (k - 1)), 2 ** (k - 1) - 1, size) for _ in range(2))
    return a, b


def _emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def _mode(mpc: Any) -> dict[str, Any]:
    import mpyc
    from mpyc import gmpy

    return {
        "kind": "meta",
        "mpyc": mpyc.__version__,
        "numpy": np.__version__,
        "gmpy2": gmpy.powmod.__module__.startswith("gmpy2"),
        "event_loop": type(mpc._loop).__module__.split(".")[0],
        "parties": len(mpc.parties),
        "threshold": mpc.threshold,
        "sec_param": mpc.options.sec_param,
        "prss": not mpc.options.no_prss,
    }


async def _sync(mpc: Any) -> None:
    """Every party sends to every other: nobody starts a clock while another is still busy."""
    await mpc.barrier()
    await mpc.transfer(mpc.pid)


async def run_ops(mpc: Any, names: list[str], size: int, fn_size: int, repeat: int) -> None:
    """Time each operation ``repeat`` times on fresh inputs; party 0 prints one line per operation."""
    if mpc.pid == 0:
        _emit(_mode(mpc))
    types: dict[tuple[int, int | None], Any] = {}
    for name in names:
        kind, (bits, frac), op = OPS[name]
        if (bits, frac) not in types:
            types[(bits, frac)] = mpc.SecInt(bits) if frac is None else mpc.SecFxp(bits, frac)
        stype = types[(bits, frac)]
        n = fn_size if "reciprocal" in name else size
        a, b = _data(kind, n)
        times, error = [], 0.0
        for _ in range(repeat):
            x = mpc.input(stype.array(a), senders=0)  # every party passes the public shape
            y = mpc.input(stype.array(b), senders=1)
            await mpc.gather(x, y)
            await _sync(mpc)
            t0 = time.perf_counter()
            out = await mpc.output(op(x, y))
            times.append(time.perf_counter() - t0)
            got = np.asarray(out, dtype=np.float64)
            want = EXPECT[name](a, b).astype(np.float64)
            error = max(error, float(np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want)))))
        if mpc.pid == 0:
            _emit(
                {
                    "kind": "op",
                    "name": name,
                    "n": n,
                    "type": f"{stype.__name__}",
                    "seconds": times,
                    "median": statistics.median(times),
                    "max_rel_error": error,
                }
            )
    if mpc.pid == 0:
        for name, why in MISSING.items():
            _emit({"kind": "missing", "name": name, "why": f"MPyC {_mode(mpc)['mpyc']}: {why}"})


async def run_train(mpc: Any, path: str, rates: list[float], clip: float) -> None:
    """The example's model (examples/hospitals_logistic.py) trained the way our library trains it:
    standardization from each party's sums (revealing the union's means and sums of squared
    deviations, as ours does), then full-batch gradient descent from the public model 0 with the
    three-piece linear sigmoid ``clamp(1/2 + z/4, 0, 1)``; only the final model is revealed. Each
    party reads only its own rows (and the public row counts); party 0 scores the model on the test
    set. The clock runs from before the parties connect until the model is revealed."""
    t0 = time.perf_counter()
    await mpc.start()
    pid, m = mpc.pid, len(mpc.parties)
    with np.load(path) as data:
        rows = [int(r) for r in data["rows"]]
        x, y = data[f"x{pid}"], data[f"y{pid}"].astype(np.float64)
        x_test, y_test = (data["x_test"], data["y_test"]) if pid == 0 else (None, None)
    d = x.shape[1]
    secfxp = mpc.SecFxp(64, 20)

    async def summed(mine: np.ndarray) -> np.ndarray:
        """The sum over the parties of one vector each, revealed."""
        parts = [mpc.input(secfxp.array(mine), senders=i) for i in range(m)]
        return np.asarray(await mpc.output(sum(parts[1:], parts[0])), dtype=np.float64)

    n = sum(rows)  # public, as ours reveals N
    mean = await summed(x.sum(axis=0)) / n  # revealing the sum with N public = revealing the mean
    ssd = await summed(((x - mean) ** 2).sum(axis=0))
    sd = np.sqrt(np.maximum(ssd, 0.0) / max(n - 1, 1))
    scale = np.where(sd > 1e-9, sd, 1.0)
    z_own = np.clip((x - mean) / scale, -clip, clip)

    xs = [mpc.input(secfxp.array(z_own if i == pid else np.zeros((rows[i], d))), senders=i) for i in range(m)]
    ys = [mpc.input(secfxp.array(y if i == pid else np.zeros(rows[i])), senders=i) for i in range(m)]
    big_x, big_y = np.vstack(xs), np.concatenate(ys)
    w: Any = None
    b: Any = None
    for epoch, lr in enumerate(rates):
        if epoch == 0:
            r = 0.5 - big_y  # sigma(0) = 1/2: the model is the public 0
        else:
            z = big_x @ w + b
            below = np.concatenate((z, -z)) < -2  # [z < -2] and [z > 2] in one vectorized comparison
            lo, hi = below[:n], below[n:]
            clamped = z + lo * (-2 - z) + hi * (2 - z)
            r = clamped * 0.25 + 0.5 - big_y
        g = big_x.T @ r
        gb = np.sum(r, keepdims=True)  # shape (1,): the bias as an array
        step = lr / n
        w = -step * g if w is None else w - step * g
        b = -step * gb if b is None else b - step * gb
    wb = await mpc.output(np.concatenate((w, b)))
    seconds = time.perf_counter() - t0
    sent = sum(p.protocol.nbytes_sent for p in mpc.parties if p.pid != pid)
    total = sum(await mpc.transfer(sent))
    if pid == 0:
        wb = np.asarray(wb, dtype=np.float64)
        coef = wb[:d] / scale
        icpt = float(wb[d] - coef @ mean)
        acc = float(np.mean(((x_test @ coef + icpt) > 0).astype(np.int64) == y_test))
        _emit(_mode(mpc))
        _emit(
            {
                "kind": "train",
                "epochs": len(rates),
                "rows": n,
                "features": d,
                "seconds": seconds,
                "megabytes": total / 1e6,
                "accuracy": acc,
                "coef": coef.tolist(),
                "intercept": icpt,
            }
        )
    await mpc.shutdown()


def main() -> None:
    from mpyc.runtime import mpc  # parses (and strips) MPyC's own options from sys.argv

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    ops = sub.add_parser("ops", help="secure comparisons, products, reciprocals")
    ops.add_argument("--size", type=int, default=10_000)
    ops.add_argument("--fn-size", type=int, default=1_000)
    ops.add_argument("--repeat", type=int, default=3)
    ops.add_argument("--only", default="", help="comma-separated substrings of operation names")
    train = sub.add_parser("train", help="the example's logistic regression")
    train.add_argument("--data", required=True, help=".npz: rows, x0, y0, x1, y1, x2, y2, x_test, y_test")
    train.add_argument("--lr", default="1,2,4", help="learning rate per epoch")
    train.add_argument("--clip", type=float, default=8.0)
    args = ap.parse_args(sys.argv[1:])
    if args.what == "ops":
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        names = [k for k in OPS if not wanted or any(w in k for w in wanted)]

        async def ops_main() -> None:
            await mpc.start()
            await run_ops(mpc, names, args.size, args.fn_size, args.repeat)
            await mpc.shutdown()

        mpc.run(ops_main())
    else:
        rates = [float(v) for v in args.lr.split(",")]
        mpc.run(run_train(mpc, args.data, rates, args.clip))


if __name__ == "__main__":
    main()
