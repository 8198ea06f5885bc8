"""Secure-type throughput: comparisons/s, fixed-point multiplications/s and the non-linear functions.

3 parties in one process on the memory transport (2 cores: the parties share them). Preprocessing
comes from the INSECURE dealer and is generated *before* the clock starts: a first, untimed run of the
same program records every request it makes (kind and size), and the timed run gets exactly that
material stocked in advance, i.e. the online phase "with the pools filled". Timed: the operation on
the whole vector and the MAC-checked output of the result. Also printed: the preprocessing each
operation consumes per element (random bits and triples), which is what MASCOT must produce for it,
and one comparison end to end with MASCOT from a cold start (``--e2e-size``, default 500 elements:
what a user waits for when no preprocessing was made in advance).

Beside ours, MPyC (lschoe/mpyc) runs the same operations on the same values and trains the same
model, as 3 local processes on this machine in the same run (``mpyc_apps.py``; MPyC is installed
only in ``benchmarks/.venv-mpyc``, made on first use). MPyC is Shamir secret sharing with passive
(semi-honest) security and an honest majority; ours is malicious security with abort against n - 1
corrupt parties: the columns differ in what they buy as well as in speed. ``--no-mpyc`` skips it.

    python benchmarks/apps_bench.py [--size 10000] [--fn-size 1000] [--repeat 3] [--no-mpyc]

**Comparisons, old path against new** (issue #13, ``--comparisons`` adds the section after the table,
``--comparisons-only`` runs it alone; not in the default run: at 10,000 comparisons the field path
takes about a quarter of an hour per row at three parties, the whole section an hour or more). For
p127 with int32 ``x < y`` (``--cmp-size``, default 10,000) and p61 with 15-bit operands (int32 needs
33 + 40 bits, which 2^61 - 1 cannot hold on either path; a 15-bit ``x - y`` has 16 bits, the most a
loose edaBit holds at p61 with three parties; ``--cmp-p61-bits``), at n = 2 and 3
(``--cmp-parties``): comparisons/s end to end with MASCOT from a cold start (set-up, all preprocessing
made by the offline services, the comparisons and their checked output), kB sent per comparison per
party, peak RSS (the process's and per party) and the ratios new/old, for the field-only protocol
(old, ``Session(comparison="field")``) against the binary one (new: AND triples, a daBit and one loose
edaBit per comparison, ``"binary"``). Each row is ``compare_bench.py``'s ``measure``: a fresh process
tree per run, the revealed bits checked against numpy (a mismatch exits non-zero); ``--cmp-mode
memory`` (default: the n parties in one process, memory transport; RSS per party its n-th part) or
``procs`` (one process per party over TLS: each party's own RSS); ``--cmp-prep planned`` (default: pools
sized to a dry run, filled, then the program) or ``demand``. The binary path at p61 masks with two
strict edaBits where one loose edaBit of ``bits + 1`` bits does not fit (n = 3 at 16 bits): the
``mask`` column says which.

    python benchmarks/apps_bench.py --comparisons-only [--cmp-size 10000] [--cmp-parties 2,3]
                                    [--cmp-moduli p127,p61] [--cmp-p61-bits 15] [--cmp-mode memory]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # compare_bench

import numpy as np  # noqa: E402
import structlog  # noqa: E402
import trio  # noqa: E402

import actors  # noqa: E402
from protocols.intercept import Forwarding, PassThrough  # noqa: E402
from protocols.preprocessing.plan import POOL_OF, PlanRecorder  # noqa: E402
from protocols.sectypes import FixedFormat, SecretFix, SecretInt  # noqa: E402

KINDS = tuple(POOL_OF)  # the requests PlanRecorder writes down: what Stocked can serve


class Stocked(Forwarding):
    """Serves a recorded plan from material produced before the clock starts."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self._stock: list[tuple[str, int, Any]] = []

    async def fill(self, plan: list[tuple[str, int]]) -> None:
        for kind, n in plan:
            self._stock.append((kind, n, await getattr(self.inner, kind)(n)))

    async def _serve(self, kind: str, n: int) -> Any:
        if self._stock and self._stock[0][:2] == (kind, n):
            return self._stock.pop(0)[2]
        return await getattr(self.inner, kind)(n)  # not stocked: produced inline (and timed)

    async def triples(self, n: int) -> Any:
        return await self._serve("triples", n)

    async def squares(self, n: int) -> Any:
        return await self._serve("squares", n)

    async def bits(self, n: int) -> Any:
        return await self._serve("bits", n)

    async def randoms(self, n: int) -> Any:
        return await self._serve("randoms", n)


class Stocking(PassThrough):
    """The interceptor that gives each session a ``Stocked`` preprocessing."""

    def wrap_preprocessing(self, session: str, pre: Any) -> Any:
        return Stocked(pre)


Op = Callable[[Any, Any], Any]  # (x, y) -> Pending

OPS: dict[str, tuple[str, Op]] = {
    "compare int32 x < y": ("int32", lambda x, y: x < y),
    "compare int64 x < y": ("int64", lambda x, y: x < y),
    "equality int32 x == y": ("int32", lambda x, y: x == y),
    "fixed-point x < y": ("fix", lambda x, y: x < y),
    "fixed-point mul x * y": ("fix", lambda x, y: x * y),
    "fixed-point x * 0.3": ("fix", lambda x, y: x * 0.3),
    "reciprocal 1 / y": ("fix", lambda x, y: y.reciprocal()),
    "sqrt": ("fix", lambda x, y: y.sqrt()),
    "exp": ("fix", lambda x, y: x.exp()),
    "sigmoid": ("fix", lambda x, y: x.sigmoid()),
}


async def _prog(s: Any, kind: str, name: str, size: int, plan: list[tuple[str, int]] | None) -> Any:
    rng = np.random.default_rng(2024)  # public benchmark data, not secrets
    if kind == "fix":
        a, b = rng.uniform(-20, 20, size), rng.uniform(0.5, 1000, size)
        x = await SecretFix.input(s, a if s.party == 0 else None, owner=0)
        y = await SecretFix.input(s, b if s.party == 1 else None, owner=1)
    else:
        k = 32 if kind == "int32" else 64
        a, b = (rng.integers(-(2 ** (k - 1)), 2 ** (k - 1) - 1, size) for _ in range(2))
        x = await SecretInt.input(s, a if s.party == 0 else None, owner=0, k=k)
        y = await SecretInt.input(s, b if s.party == 1 else None, owner=1, k=k)
    if plan is not None:
        await s.pre.fill(plan)
    await s.mac_check()  # a synchronizing round: nobody's clock starts while another still stocks
    r0 = s.stats["rounds"]
    t0 = time.perf_counter()
    z = await OPS[name][1](x, y)
    out = await z.reveal()
    t1 = time.perf_counter()
    return t0, t1, s.stats["rounds"] - r0, out


async def measure(name: str, size: int, repeat: int) -> tuple[float, int, dict[str, float]]:
    kind = OPS[name][0]
    rec = {i: PlanRecorder() for i in range(3)}
    async with actors.local_cluster(3, preprocessing="dealer", interceptors=rec) as c:
        await c.run(_prog, kind, name, size, None)
    plan = rec[0].requests
    per_elem = {k: sum(n for kk, n in plan if kk == k) / size for k in KINDS}
    times, rounds = [], 0
    for _ in range(repeat):
        stock = {i: Stocking() for i in range(3)}
        async with actors.local_cluster(3, preprocessing="dealer", interceptors=stock) as c:
            res = await c.run(_prog, kind, name, size, plan)
        times.append(max(r[1] for r in res) - min(r[0] for r in res))
        rounds = res[0][2]
    return statistics.median(times), rounds, per_elem


E2E_OP = "compare int32 x < y"


async def end_to_end(name: str, size: int) -> tuple[float, float, dict[str, int]]:
    """The operation with MASCOT from a cold start: seconds from creating the parties (set-up and all
    preprocessing, made on demand) to the checked output, the seconds of the online part alone, and
    what the offline services generated."""
    kind = OPS[name][0]
    t0 = time.perf_counter()
    async with actors.local_cluster(3, preprocessing="mascot") as c:
        res = await c.run(_prog, kind, name, size, None)
        made = c.parties[0].offline.metrics()["generated"] if c.parties[0].offline else {}
    total = time.perf_counter() - t0
    return total, max(r[1] for r in res) - min(r[0] for r in res), made


# ---------------------------------------------------------------------------------------- old vs new
def comparison_section(args: argparse.Namespace) -> bool:
    """Issue #13's comparison rows: the field path (old) against the binary one (new), cold starts
    with MASCOT, through ``compare_bench.measure``. False if some revealed bit was wrong."""
    import compare_bench as cb

    size, ok = args.cmp_size, True
    moduli = [m.strip() for m in args.cmp_moduli.split(",") if m.strip()]
    parties = [int(v) for v in args.cmp_parties.split(",") if v.strip()]
    where = (
        "n parties in one process, memory transport"
        if args.cmp_mode == "memory"
        else "a process per party, TLS"
    )
    print()
    print(f"comparisons x < y, old (field) against new (binary) path: {size:,} per run, MASCOT from a cold")
    print(f"start ({args.cmp_prep} preprocessing), {where}; a fresh process tree per run")
    print(
        f"{'field':<6}{'bits':>5}{'n':>3}  {'path':<11}{'e2e s':>8}{'cmp/s':>9}{'kB/cmp':>9}"
        f"{'RSS MB':>8}{'per party':>10}  {'mask':<7}check"
    )
    for modulus in moduli:
        bits = 32 if modulus == "p127" else args.cmp_p61_bits
        for n in parties:
            rows = {}
            for path, label in (("field", "old field"), ("binary", "new binary")):
                r = cb.measure(args.cmp_mode, n, size, path, args.cmp_prep, modulus=modulus, bits=bits)
                rows[path] = r
                ok &= r["ok"]
                mask = cb.binary_mask(modulus, n, bits) if path == "binary" else "-"
                shared = "~" if r["shared"] else " "
                print(
                    f"{modulus:<6}{bits:>5}{n:>3}  {label:<11}{r['e2e']:8.1f}{r['rate']:9.1f}{r['kb']:9.1f}"
                    f"{r['rss']:8.0f}{r['per_party']:9.0f}{shared}  {mask:<7}{'ok' if r['ok'] else 'FAIL'}",
                    flush=True,
                )
            x = {k: rows["binary"][k] / rows["field"][k] for k in ("e2e", "rate", "kb", "rss", "per_party")}
            print(
                f"{'':<14}  {'new/old':<11}{x['e2e']:7.2f}x{x['rate']:8.2f}x{x['kb']:8.2f}x"
                f"{x['rss']:7.2f}x{x['per_party']:8.2f}x"
            )
    print("e2e: from creating the parties to the last checked output; kB/cmp: payload bytes one party sent")
    print("(mean over parties) / comparisons; RSS: peak resident set, memory mode: the one process of all")
    print(
        "n parties (~: per party its n-th part), procs: the largest party's own; mask (new path): one loose"
    )
    gb = cb.MP_SPDZ_RSS_MB / 1e3
    print(f"edaBit, or two strict ones where it does not fit. MP-SPDZ: {gb:.2f} GB per party")
    if not ok:
        print("CORRECTNESS CHECK FAILED: some revealed x < y differs from numpy's")
    return ok


# ---------------------------------------------------------------------------------------- MPyC beside
# MPyC in a virtual environment of its own, so that neither this project nor its CI depends on it;
# gmpy2 and uvloop are MPyC's optional speed-ups (its best configuration), installed if they can be.
MPYC_VENV = Path(__file__).resolve().parent / ".venv-mpyc"
MPYC_PROGRAM = Path(__file__).resolve().parent / "mpyc_apps.py"
MPYC_PACKAGES = ("mpyc>=0.11", "numpy")  # tested with mpyc 0.11
MPYC_SPEEDUPS = ("gmpy2", "uvloop")
MPYC_OPTIONS = ("-K", "40", "--no-log")  # 40-bit statistical security, like ours (MPyC's default: 30)
MPYC_SECURITY = (
    "MPyC: Shamir secret sharing, passive (semi-honest) security with an honest majority (t = 1 of 3),",
    "no preprocessing (PRSS); ours: SPDZ, malicious security with abort against n - 1 = 2 corrupt parties",
)


class MpycUnavailable(Exception):
    """MPyC could not be installed or run; the benchmark goes on without it."""


def _why(exc: BaseException) -> str:
    text = getattr(exc, "stderr", None) or ""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and "is ignored" not in ln]
    return lines[-1] if lines else str(exc)


def _mpyc_version(py: Path) -> str | None:
    if not py.exists():
        return None
    probe = [str(py), "-c", "import mpyc, numpy; print(mpyc.__version__)"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=120)  # noqa: S603
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def mpyc_python() -> Path:
    """The interpreter of MPyC's virtual environment, created (and filled from PyPI) on first use."""
    py = MPYC_VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if _mpyc_version(py) is not None:
        return py
    packages = " ".join(MPYC_PACKAGES + MPYC_SPEEDUPS)
    print(f"MPyC: installing into {MPYC_VENV} (pip install {packages}) ...", flush=True)
    pip = [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    try:
        if not py.exists():
            make = [sys.executable, "-m", "venv", str(MPYC_VENV)]
            subprocess.run(make, check=True, capture_output=True, text=True, timeout=600)  # noqa: S603
        subprocess.run([*pip, *MPYC_PACKAGES], check=True, capture_output=True, text=True, timeout=1800)  # noqa: S603
    except (OSError, subprocess.SubprocessError) as exc:
        raise MpycUnavailable(f"could not install MPyC into {MPYC_VENV}: {_why(exc)}") from exc
    try:  # optional: MPyC runs without them, only slower
        subprocess.run([*pip, *MPYC_SPEEDUPS], check=True, capture_output=True, text=True, timeout=1800)  # noqa: S603
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"MPyC: without {' '.join(MPYC_SPEEDUPS)} ({_why(exc)})", flush=True)
    if _mpyc_version(py) is None:
        raise MpycUnavailable(f"{py} cannot import mpyc after installing it")
    return py


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for sk in socks:
            sk.bind(("127.0.0.1", 0))
        return [int(sk.getsockname()[1]) for sk in socks]
    finally:
        for sk in socks:
            sk.close()


def run_mpyc(args: list[str], timeout: float) -> list[dict[str, Any]]:
    """Run ``mpyc_apps.py`` as 3 local parties (TCP on loopback) and return party 0's JSON lines."""
    py = mpyc_python()
    where = [a for port in _free_ports(3) for a in ("-P", f"localhost:{port}")]
    with tempfile.TemporaryDirectory() as tmp:
        procs: list[subprocess.Popen[bytes]] = []
        errs = [Path(tmp) / f"party{i}.err" for i in range(3)]
        try:
            for i in range(3):
                cmd = [str(py), str(MPYC_PROGRAM), *where, "-I", str(i), *MPYC_OPTIONS, *args]
                out = subprocess.PIPE if i == 0 else subprocess.DEVNULL
                with open(errs[i], "wb") as err:
                    party = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=tmp)  # noqa: S603
                procs.append(party)
            stdout, _ = procs[0].communicate(timeout=timeout)
            if procs[0].returncode == 0:  # else the others are stopped below, not waited for
                for p in procs[1:]:
                    p.wait(timeout=60)
        except subprocess.TimeoutExpired as exc:
            raise MpycUnavailable(f"MPyC did not finish within {exc.timeout:.0f} s") from exc
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        failed = [i for i, p in enumerate(procs) if p.returncode != 0]
        if failed:
            tail = errs[failed[0]].read_text(errors="replace").strip().splitlines()[-1:] or ["no message"]
            raise MpycUnavailable(f"MPyC party {failed[0]} failed: {tail[0]}")
    return [json.loads(ln) for ln in stdout.decode().splitlines() if ln.startswith("{")]


def describe_mpyc(meta: dict[str, Any]) -> str:
    extras = [f"numpy {meta['numpy']}", f"gmpy2 {'on' if meta['gmpy2'] else 'off'}", meta["event_loop"]]
    return f"MPyC {meta['mpyc']} ({', '.join(extras)})"


def mpyc_ops(args: argparse.Namespace) -> tuple[dict[str, dict[str, Any]] | None, list[str]]:
    """MPyC's figures per operation name (None: MPyC unavailable), and the lines to print under the
    table."""
    argv = ["ops", "--size", str(args.size), "--fn-size", str(args.fn_size), "--repeat", str(args.repeat)]
    if args.only:
        argv += ["--only", args.only]
    print("MPyC: the same operations in 3 processes first (minutes at --size 10000; --no-mpyc skips)")
    try:
        records = run_mpyc(argv, timeout=3600)
    except MpycUnavailable as exc:
        return None, [f"MPyC left out: {exc}"]
    meta = next(r for r in records if r["kind"] == "meta")
    ops = {r["name"]: r for r in records if r["kind"] == "op"}
    bad = [n for n, r in ops.items() if r["max_rel_error"] > 1e-3]
    missing = ", ".join(r["name"] for r in records if r["kind"] == "missing")
    v, ok = meta["mpyc"], "WRONG for " + ", ".join(bad) if bad else "all correct"
    notes = [
        f"MPyC ops/s: {describe_mpyc(meta)} on secure NumPy arrays (vectorized), 3 processes",
        f"on this machine, TCP on loopback, {meta['sec_param']}-bit statistical security; timed on party 0:",
        f"the operation + output, median of {args.repeat}; results checked against numpy: {ok}",
        "MPyC's times include making its random bits (PRSS, inline: it has no offline phase); ours leave",
        "out the preprocessing (stocked before the clock; MASCOT makes it at the cost in the training)",
        *MPYC_SECURITY,
        "MPyC types: SecInt33 / SecInt65 for the int32 / int64 rows (k + 1 bits, as ours compares: MPyC's",
        "secint32 < assumes |x - y| < 2^31), SecFxp64:20 for fixed point, SecFxp64:32 for 1 / y (MPyC",
        f"{v}'s fixed-point 1/x needs f = l/2; with f = 20 it returns 0)",
        f"-: MPyC {v} has no vectorized {missing}",
    ]
    return ops, notes


def main() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=10_000, help="elements for comparisons and products")
    ap.add_argument("--fn-size", type=int, default=1_000, help="elements for reciprocal/sqrt/exp/sigmoid")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated substrings of operation names")
    ap.add_argument("--no-mpyc", action="store_true", help="leave out MPyC (table and training)")
    ap.add_argument(
        "--e2e-size", type=int, default=500, help=f"elements for {E2E_OP!r} end to end with MASCOT (0: skip)"
    )
    cmp = ap.add_argument_group("comparisons, old path against new (issue #13)")
    cmp.add_argument("--comparisons", action="store_true", help="add the section after the table")
    cmp.add_argument("--comparisons-only", action="store_true", help="run only that section")
    cmp.add_argument("--cmp-size", type=int, default=10_000, help="comparisons per run (default 10000)")
    cmp.add_argument("--cmp-parties", default="2,3", help="party counts (default 2,3)")
    cmp.add_argument("--cmp-moduli", default="p127,p61", help="fields (default p127,p61)")
    cmp.add_argument("--cmp-p61-bits", type=int, default=15, help="operand bits at p61 (default 15)")
    cmp.add_argument("--cmp-mode", default="memory", choices=("memory", "procs"), help="(default memory)")
    cmp.add_argument("--cmp-prep", default="planned", choices=("planned", "demand"), help="(default planned)")
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    args.cmp_ok = True
    if args.comparisons_only:
        args.cmp_ok = comparison_section(args)
        return args
    mpyc, notes = ({}, []) if args.no_mpyc else mpyc_ops(args)
    if mpyc is None:  # not installable or not running: no second try for the training
        args.no_mpyc, mpyc = True, {}
    fmt = FixedFormat()
    print("secure types, 3 parties, one process, memory transport, p127, dealer preprocessing stocked")
    print(f"before timing; fixed point k = {fmt.k}, f = {fmt.f}; timed: the operation + MAC-checked output")
    head = f"{'operation':28} {'n':>7} {'ops/s':>12} {'ms':>9} {'rounds':>7}"
    head = f"{head} {'bits/el':>8} {'triples/el':>10}"
    print(f"{head} {'MPyC ops/s':>11}" if mpyc else head)
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    for name in OPS:
        if wanted and not any(w in name for w in wanted):
            continue
        heavy = any(w in name for w in ("reciprocal", "sqrt", "exp", "sigmoid"))
        size = args.fn_size if heavy else args.size
        t, rounds, per = trio.run(measure, name, size, args.repeat)
        row = (
            f"{name:28} {size:>7} {size / t:>12,.0f} {t * 1e3:>9.1f} {rounds:>7} "
            f"{per['bits']:>8.0f} {per['triples']:>10.0f}"
        )
        if mpyc:
            theirs = mpyc.get(name)
            row += f" {theirs['n'] / theirs['median']:>11,.0f}" if theirs else f" {'-':>11}"
        print(row, flush=True)
    print("rounds include the output (open + 2 MAC checks: 9 rounds)")
    for line in notes:
        print(line)
    if args.e2e_size > 0 and (not wanted or any(w in E2E_OP for w in wanted)):
        total, online, made = trio.run(end_to_end, E2E_OP, args.e2e_size)
        stuff = ", ".join(f"{v:,} {k}s" for k, v in sorted(made.items()) if v)
        print()
        print("end to end with MASCOT (3 parties, one process, cold start: set-up and all preprocessing")
        print(f"made on demand, then the operation and its checked output): {E2E_OP}, n = {args.e2e_size:,}")
        print(
            f"  {total:.1f} s in all = {args.e2e_size / total:,.0f} ops/s; of that the operation itself "
            f"{online:.2f} s (preprocessing arrives while it runs); generated: {stuff}"
        )
    if args.comparisons:
        args.cmp_ok = comparison_section(args)
    return args


# ---------------------------------------------------------------------------------------- example model
# Time to train the example model (examples/hospitals_logistic.py) end to end: breast cancer data,
# 455 training rows x 30 features dealt to 3 parties in one process (memory transport), secure
# standardization, Böhning's method (protocols.apps.logistic), the model revealed; the clock starts
# before the parties do, so MASCOT's set-up and all its preprocessing are inside. The dealer line is
# the same job with the INSECURE dealer: what is left when preprocessing costs nothing. Printed per
# line: iterations, seconds, MB, preprocessing items made, test accuracy and scikit-learn's.
# SPDZ_BENCH_TRAIN=skip leaves it out, =dealer runs the dealer line only; SPDZ_BENCH_TRAIN_ITERS=2,20
# measures other iteration counts (default: the example's). With MPyC: MPyC's logistic regression
# (mpyc_apps.py: the previous recipe, 3 epochs of gradient descent with the piecewise sigmoid, as
# MPyC's demos train), the rows handed over in a temporary .npz file.
MPYC_RATES = (1.0, 2.0, 4.0)


def train_example_model(with_mpyc: bool = True) -> None:
    mode = os.environ.get("SPDZ_BENCH_TRAIN", "mascot")
    if mode == "skip":
        return
    from logreg_bench import example  # examples/hospitals_logistic.py, loaded as a module

    from protocols.apps.logistic import NewtonConfig

    ex = example()

    data = ex.load_hospitals()
    base = ex.CONFIG
    wanted = os.environ.get("SPDZ_BENCH_TRAIN_ITERS", "")
    iters = [int(e) for e in wanted.split(",") if e.strip()] or [base.iterations]
    sk_model, _ = ex.sklearn_model(data)
    sk_acc = ex.accuracy(sk_model, data.x_test, data.y_test)
    print()
    print("time to train the example model (examples/hospitals_logistic.py), end to end: 3 parties, one")
    rows, cols = data.x_train.shape
    print(
        f"process, memory transport; {rows} training rows x {cols} features; Böhning's method, C = {base.C:g}"
    )
    print(f"{base.sigmoid} sigmoid; MASCOT from a cold start (set-up included)")
    head = f"{'preprocessing':14} {'iters':>5} {'seconds':>8} {'MB sent':>9} {'items':>9}"
    print(f"{head} {'secure acc':>10} {'sklearn':>8}  made")
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "hospitals.npz"
        if with_mpyc:
            _save_hospitals(npz, data)
        for it in iters:
            cfg = NewtonConfig(iterations=it, sigmoid=base.sigmoid)
            for prep in ("dealer",) if mode == "dealer" else ("dealer", "mascot"):
                run = trio.run(ex.train_securely, data, cfg, prep, "memory", False)
                acc = ex.accuracy(run.model, data.x_test, data.y_test)
                made = ", ".join(f"{v:,} {k}s" for k, v in sorted(run.generated.items()) if v) or "-"
                items = sum(run.generated.values())
                print(
                    f"{prep:14} {it:>5} {run.seconds_total:>8.1f} {run.megabytes:>9,.0f} {items:>9,} "
                    f"{acc:>10.2%} {sk_acc:>8.2%}  {made}",
                    flush=True,
                )
        if with_mpyc:
            rates = ",".join(repr(v) for v in MPYC_RATES)
            try:
                out = run_mpyc(["train", "--data", str(npz), "--lr", rates, "--clip", "8.0"], 900)
            except MpycUnavailable as exc:
                print(f"MPyC left out: {exc}")
                return
            meta = next(r for r in out if r["kind"] == "meta")
            r = next(r for r in out if r["kind"] == "train")
            print(
                f"{'MPyC ' + meta['mpyc']:14} {'3 ep':>5} {r['seconds']:>8.1f} {r['megabytes']:>9,.0f} "
                f"{'-':>9} "
                f"{r['accuracy']:>10.2%} {sk_acc:>8.2%}  - (no preprocessing)",
                flush=True,
            )
            print(f"MPyC line: {describe_mpyc(meta)}, secure NumPy arrays, SecFxp(64, 20), 3 processes,")
            print("TCP on loopback; 3 epochs of gradient descent (learning rates 1, 2, 4) with the piecewise")
            print("sigmoid, standardization from each party's sums; clock from connecting until the model is")
            print("revealed")
            for line in MPYC_SECURITY:
                print(line)
    print("target: within 1 point of scikit-learn in under 60 s end to end with MASCOT")


def _save_hospitals(path: Path, data: Any) -> None:
    """The example's data for mpyc_apps.py: each party's rows, the public row counts, the test set."""
    rows = {f"x{i}": x for i, (x, _) in enumerate(data.parts)}
    rows |= {f"y{i}": y for i, (_, y) in enumerate(data.parts)}
    counts = np.asarray([len(y) for _, y in data.parts])
    np.savez(path, rows=counts, x_test=data.x_test, y_test=data.y_test, **rows)


if __name__ == "__main__":
    options = main()
    if not options.comparisons_only:
        train_example_model(with_mpyc=not options.no_mpyc)
    raise SystemExit(0 if options.cmp_ok else 1)
