"""Secure comparisons end to end with MASCOT from a cold start: comparisons/s, bytes and peak RSS per party.

``N`` int32 comparisons ``x < y`` (``SecretInt``, ``protocols.comparison.ltz``; x from party 0, y from
party 1, fixed public seed) at n = 2 and 3 parties on the p127 field (``--modulus p61 --bits 16``: 16-bit
operands in ``[-2^15, 2^15)``, ``SecretInt(k=16)``, on 2^61 - 1, which cannot hold an int32 comparison's
33 bits plus 40 of masking on either path), each configuration in a fresh
process tree (so "cold" is cold: no set-up, no preprocessing, no warm allocator), and the revealed
bits checked against numpy's ``x < y`` (a mismatch makes the benchmark exit non-zero).

Two ways to run the parties (``--mode``):

* ``memory``: every party in ONE process (``actors.local_cluster``, the in-process memory transport,
  payload bytes counted exactly): the peak RSS printed is that process's, shared by the n parties
  (its n-th part is shown as an estimate per party);
* ``procs``: one OS process per party (``actors.Party(config)`` over mutually authenticated TLS 1.3 on
  loopback, a fresh cluster CA in a temporary directory, as ``local_bench.py`` and ``spdz demo``):
  the peak RSS is each party's own (``VmHWM`` of ``/proc/self/status``; the largest is printed).

Two ways to size the preprocessing (``--prep``):

* ``planned``: a dry run on the INSECURE dealer (``actors.plan.preprocessing_plan``, in the parent,
  not timed) counts what the program consumes; the pools are sized to it (``Watermarks.for_plan``),
  filled (``Cluster.stock`` / ``OfflineService.wait_for``, as much as the pools' byte bound allows),
  then the program runs;
* ``demand``: the default watermarks; the program asks, the offline services make it on demand (what
  ``apps_bench.py``'s end-to-end line does).

Timed (**e2e**): from creating the parties (TLS connections, base OTs, all preprocessing) to the last
party's checked output; **comparisons/s** = N / e2e. **offline**: until the pools held the plan
(planned only). **kB/cmp**: payload bytes one party sent, divided by N (the mean over parties; TLS:
what crossed the links, framing included). **CPU s**: user and system CPU seconds of every party's
process (the machine has 2 cores: a run is CPU-bound when e2e is about CPU / 2).

Two comparison protocols (``--path``): ``field`` (the field-only one: random field bits and triples, all
MASCOT) and ``binary`` (``protocols.comparison_binary``: a loose edaBit, AND triples and a daBit per
comparison, made by the offline service's binary pools, their field material by MASCOT).

    python benchmarks/compare_bench.py [--size 2000] [--parties 2,3] [--mode memory,procs]
                                       [--prep planned] [--path field,binary] [--repeat 1]
                                       [--modulus p127|p61] [--bits 32|16] [--batch-mb 0]

``measure`` (one configuration, ``--repeat`` cold runs) is what ``apps_bench.py --comparisons`` calls.
"""

from __future__ import annotations

import time

T_LAUNCH = time.monotonic()  # a process's start, before its imports

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import traceback  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import structlog  # noqa: E402
import trio  # noqa: E402

SEED = 2032
BATCH = 2048  # Watermarks.for_plan's batch size (as ``spdz demo``)
TAG = "COMPARE_BENCH "
BATCH_MB = [0]  # --batch-mb: one batch's memory bound in the memory mode (0: the default)
MP_SPDZ_RSS_MB = 260.0  # the yardstick: MP-SPDZ's peak RSS per party on this run


def quiet_logs() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))


def hwm_mb() -> float:
    """This process's peak resident set (``VmHWM``; ``ru_maxrss`` where there is no /proc), in MB."""
    try:
        for ln in Path("/proc/self/status").read_text().splitlines():
            if ln.startswith("VmHWM:"):
                return int(ln.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_seconds() -> float:
    """User and system CPU time of this process so far (every thread)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


DEFAULT_BITS = {"p127": 32, "p61": 16}  # --bits per --modulus: int32 where it fits, else 16 bits


def operands(size: int, bits: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """The public benchmark data: ``size`` pairs of ``bits``-bit signed integers (x at party 0, y at
    party 1; int32 by default)."""
    rng = np.random.default_rng(SEED)
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1)
    x = rng.integers(lo, hi, size, dtype=np.int64)
    y = rng.integers(lo, hi, size, dtype=np.int64)
    y[: size // 16] = x[: size // 16]  # some equal pairs: x < y must be 0 there
    return x, y


async def compare_program(s: Any, size: int, path: str = "field", bits: int = 32) -> list[int]:
    """``x < y`` on ``size`` pairs of ``bits``-bit integers (``SecretInt(k=bits)``); each party makes
    only its own operand. ``path``: the comparison protocol, ``field`` (random field bits and
    triples) or ``binary`` (edaBits, AND triples and a daBit from the binary domain,
    ``protocols.comparison_binary``)."""
    from protocols.sectypes import SecretInt

    s.comparison = path
    x, y = operands(size, bits)
    sx = await SecretInt.input(s, x if s.party == 0 else None, owner=0, k=bits)
    sy = await SecretInt.input(s, y if s.party == 1 else None, owner=1, k=bits)
    lt = await (sx < sy)
    return [int(v) for v in await lt.reveal()]


def check(result: list[int], size: int, bits: int = 32) -> bool:
    x, y = operands(size, bits)
    return bool(np.array_equal(np.asarray(result, dtype=np.int64), (x < y).astype(np.int64)))


# ---------------------------------------------------------------------------------------- children
async def memory_main(job: dict[str, Any]) -> None:
    """``--child memory``: the n parties in this process."""
    import actors
    from actors.offline import Watermarks

    n, size, need, bits = job["n"], job["size"], job.get("need"), job["bits"]
    marks = Watermarks.for_plan(need, BATCH) if need else None
    if marks is not None and job.get("batch_mb"):
        marks.batch_bytes = job["batch_mb"] << 20
    t0 = time.monotonic()
    async with actors.local_cluster(n, modulus=job["modulus"], preprocessing="mascot", watermarks=marks) as c:
        assert c.hub is not None
        t_setup = time.monotonic()
        if need:
            await c.stock(need, poll=0.05)
        t_ready = time.monotonic()
        sent0 = list(c.hub.bytes_sent)
        outs = await c.run(compare_program, size, job["path"], bits)
        t_end = time.monotonic()
        sent = list(c.hub.bytes_sent)
        generated = c.parties[0].offline.metrics()["generated"] if c.parties[0].offline else {}
    rss = hwm_mb()
    print(
        TAG
        + json.dumps(
            {
                "e2e": t_end - t0,
                "setup": t_setup - t0,
                "offline": t_ready - t0,
                "online": t_end - t_ready,
                "sent": sent,
                "sent_online": [a - b for a, b in zip(sent, sent0, strict=True)],
                "rss": [rss],
                "cpu": cpu_seconds(),
                "shared": True,
                "ok": all(check(o, size, bits) for o in outs) and all(o == outs[0] for o in outs),
                "generated": generated,
            }
        ),
        flush=True,
    )


async def party_main(job: dict[str, Any], party: int) -> None:
    """``--child i``: party ``i`` in its own process, from its config (TLS on loopback)."""
    import actors

    need, size = job.get("need"), job["size"]
    t0 = time.monotonic()
    async with actors.Party(job["configs"][party]) as p:
        off = p.offline
        assert off is not None, "the config's preprocessing must be MASCOT"
        await off.wait_ready()
        t_setup = time.monotonic()
        if need:
            await off.wait_for(need)
        t_ready = time.monotonic()
        sent0 = p.links.bytes_sent
        out = await p.run(compare_program, size, job["path"], job["bits"], session=job["session"])
        t_end = time.monotonic()
        rec = {
            "party": party,
            "t0": t0,
            "t_setup": t_setup,
            "t_ready": t_ready,
            "t_end": t_end,
            "sent": p.links.bytes_sent,
            "sent_online": p.links.bytes_sent - sent0,
            "rss": hwm_mb(),
            "cpu": cpu_seconds(),
            "ok": check(out, size, job["bits"]),
            "digest": hash(tuple(out)),
        }
        await report(rec)


def run_child(argv: list[str], start: Callable[[str, dict[str, Any]], Any]) -> int:
    """``--child W --job FILE``: ``start(W, job)`` in this process (a benchmark's child mode, for
    ``launch``); an error goes to the parent as a record."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", required=True)
    ap.add_argument("--job", required=True)
    args = ap.parse_args(argv)
    quiet_logs()
    job = json.loads(Path(args.job).read_text())
    try:
        start(args.child, job)
    except BaseException as e:  # noqa: BLE001 (reported to the parent, which prints it)
        err = "".join(traceback.format_exception(e))
        print(TAG + json.dumps({"error": err[-4000:]}), flush=True)
        return 1
    return 0


async def report(rec: dict[str, Any]) -> None:
    """A child's record to the parent; then wait for its word to exit (our messages may still be
    needed by the other parties)."""
    print(TAG + json.dumps(rec), flush=True)
    await trio.to_thread.run_sync(sys.stdin.readline)


def child(argv: list[str]) -> int:
    def start(who: str, job: dict[str, Any]) -> None:
        if who == "memory":
            trio.run(memory_main, job)
        else:
            trio.run(party_main, job, int(who))

    return run_child(argv, start)


# ---------------------------------------------------------------------------------------- the parent
def launch(
    job: dict[str, Any], who: list[str], root: Path, timeout: float, script: Path | None = None
) -> list[dict[str, Any]]:
    """Start one child per entry of ``who`` on ``job``; their records (an error raises). ``script``: the
    benchmark whose ``--child`` mode the children run (this one by default); it prints its record
    after ``TAG`` and then waits for a line on stdin."""
    job_file = root / "job.json"
    job_file.write_text(json.dumps(job))
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "RUNTIME_DIRECTORY")}
    procs = [
        subprocess.Popen(  # noqa: S603 (this script, our own arguments)
            [sys.executable, str(script or Path(__file__).resolve()), "--child", w, "--job", str(job_file)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(root / f"child-{w}.log", "wb"),  # noqa: SIM115 (the child owns it)
            env=env,
            cwd=ROOT,
        )
        for w in who
    ]
    records: list[dict[str, Any]] = []
    lock, done = threading.Lock(), threading.Event()

    def reader(p: subprocess.Popen[bytes]) -> None:
        assert p.stdout is not None
        for raw in p.stdout:
            line = raw.decode(errors="replace").strip()
            if line.startswith(TAG):
                with lock:
                    records.append(json.loads(line[len(TAG) :]))
                    if "error" in records[-1] or len(records) == len(who):
                        done.set()
        if p.wait() != 0:
            with lock:
                records.append({"error": f"a child exited with {p.returncode}"})
                done.set()

    for p in procs:
        threading.Thread(target=reader, args=(p,), daemon=True).start()
    finished = done.wait(timeout)
    for p in procs:  # release the parties (they wait for this once they have their result)
        try:
            assert p.stdin is not None
            p.stdin.write(b"exit\n")
            p.stdin.close()
        except (BrokenPipeError, OSError):
            pass
    for p in procs:
        try:
            p.wait(30 if finished else 0)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    errors = [r["error"] for r in records if "error" in r]
    if not finished or errors:
        tails = [(root / f"child-{w}.log").read_text(errors="replace")[-2000:] for w in who]
        raise RuntimeError(("timed out" if not finished else "\n".join(errors)) + "\n" + "\n".join(tails))
    return records


def run_config(
    mode: str,
    n: int,
    size: int,
    need: dict[str, int] | None,
    timeout: float,
    path: str = "field",
    *,
    modulus: str = "p127",
    bits: int = 32,
) -> dict[str, Any]:
    """One cold run: the cluster-level figures."""
    with tempfile.TemporaryDirectory(prefix="spdz-compare-bench-") as tmp:
        root = Path(tmp)
        job: dict[str, Any] = {"n": n, "size": size, "need": need, "path": path, "batch_mb": BATCH_MB[0]}
        job.update(modulus=modulus, bits=bits)
        if mode == "memory":
            (r,) = launch(job, ["memory"], root, timeout)
            return {
                "e2e": r["e2e"],
                "offline": r["offline"] if need else None,
                "online": r["online"],
                "bytes": statistics.mean(r["sent"]),
                "rss": r["rss"][0],
                "cpu": r["cpu"],
                "shared": True,
                "ok": r["ok"],
            }
        from actors.cluster import loopback_configs, planned_configs
        from actors.config import Backoff

        if need and modulus == "p127":
            paths = planned_configs(root / "cluster", n, need, BATCH)
        elif need:  # planned_configs' settings on another field
            from actors.offline import Watermarks

            marks = Watermarks.for_plan(need, BATCH)
            paths = loopback_configs(
                root / "cluster",
                n,
                field=modulus,
                preprocessing="mascot",
                insecure_dealer=False,
                watermarks=marks,
                log_level="error",
                reconnect=Backoff(0.05, 0.5),
            )
        else:
            paths = loopback_configs(
                root / "cluster", n, field=modulus, log_level="error", reconnect=Backoff(0.05, 0.5)
            )
        job.update(configs=[str(p) for p in paths], session=f"compare-bench-{uuid.uuid4().hex[:8]}")
        recs = sorted(launch(job, [str(i) for i in range(n)], root, timeout), key=lambda r: r["party"])
        t0 = min(r["t0"] for r in recs)
        return {
            "e2e": max(r["t_end"] for r in recs) - t0,
            "offline": max(r["t_ready"] for r in recs) - t0 if need else None,
            "online": max(r["t_end"] for r in recs) - max(r["t_ready"] for r in recs),
            "bytes": statistics.mean(r["sent"] for r in recs),
            "rss": max(r["rss"] for r in recs),
            "cpu": sum(r["cpu"] for r in recs),
            "shared": False,
            "ok": all(r["ok"] for r in recs) and len({r["digest"] for r in recs}) == 1,
        }


def plan(n: int, size: int, path: str, modulus: str = "p127", bits: int = 32) -> dict[str, int]:
    """What the program consumes, by pool (a dry run on the INSECURE dealer, in this process)."""
    from actors.plan import preprocessing_plan

    return trio.run(partial(preprocessing_plan, modulus=modulus), compare_program, n, size, path, bits)


def binary_mask(modulus: str, n: int, bits: int) -> str:
    """The binary path's mask for ``bits``-bit ``x < y`` (a ``bits + 1``-bit difference): ``loose``
    (one loose edaBit) where it fits the field at ``n`` parties, else ``strict`` (two strict edaBits)."""
    from protocols.comparison import KAPPA
    from protocols.comparison_binary import loose_fits
    from protocols.field import get_field

    return "loose" if loose_fits(get_field(modulus), n, bits + 1, KAPPA) else "strict"


def measure(
    mode: str,
    n: int,
    size: int,
    path: str,
    prep: str = "planned",
    *,
    modulus: str = "p127",
    bits: int = 32,
    repeat: int = 1,
    timeout: float = 1800.0,
    need: dict[str, int] | None = None,
) -> dict[str, Any]:
    """One configuration: ``repeat`` cold runs (``run_config``), the median by e2e, with ``rss`` the
    largest of the runs, ``per_party`` the peak RSS per party (the n-th part where the parties share
    a process), ``rate`` comparisons/s, ``kb`` kB per comparison per party and ``ok`` every run's
    check. ``need``: the plan (made here if ``prep`` is planned and it is not given)."""
    if prep == "planned" and need is None:
        need = plan(n, size, path, modulus, bits)
    runs = [
        run_config(
            mode, n, size, need if prep == "planned" else None, timeout, path, modulus=modulus, bits=bits
        )
        for _ in range(repeat)
    ]
    r = dict(sorted(runs, key=lambda r: r["e2e"])[len(runs) // 2])
    r["rss"] = max(x["rss"] for x in runs)
    r["per_party"] = r["rss"] / n if r["shared"] else r["rss"]
    r["rate"] = size / r["e2e"]
    r["kb"] = r["bytes"] / size / 1e3
    r["ok"] = all(x["ok"] for x in runs)
    return r


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--child" in argv:
        return child(argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2000, help="comparisons (default 2000)")
    ap.add_argument("--parties", default="2,3", help="party counts (default 2,3)")
    ap.add_argument("--mode", default="memory,procs", help="memory (one process), procs (one per party)")
    ap.add_argument("--prep", default="planned", help="planned (pools sized to a dry run), demand")
    ap.add_argument("--path", default="field,binary", help="comparison protocols: field, binary")
    ap.add_argument("--batch-mb", type=int, default=0, help="[memory] batch_mb (memory mode; 0: the default)")
    ap.add_argument("--modulus", default="p127", choices=tuple(DEFAULT_BITS), help="field (default p127)")
    ap.add_argument(
        "--bits", type=int, default=0, help="operand bits (default: 32 at p127, 16 at p61, the most it holds)"
    )
    ap.add_argument("--repeat", type=int, default=1, help="cold runs per configuration (median)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    args = ap.parse_args(argv)
    quiet_logs()
    BATCH_MB[0] = args.batch_mb
    size, modulus = args.size, args.modulus
    bits = args.bits or DEFAULT_BITS[modulus]
    print(
        f"{size:,} int{bits} comparisons x < y, MASCOT from a cold start, {modulus}; a fresh process tree "
        "per run"
    )
    print(
        f"{'path':<7}{'mode':<8}{'prep':<9}{'n':>2}{'e2e s':>9}{'offline s':>10}{'online s':>9}{'cmp/s':>9}"
        f"{'kB/cmp':>9}{'CPU s':>8}{'peak RSS MB':>13}{'per party':>11}  check"
    )
    failed = False
    for n, path in ((int(v), p) for v in args.parties.split(",") for p in args.path.split(",")):
        need = plan(n, size, path, modulus, bits) if "planned" in args.prep else None
        for prep in args.prep.split(","):
            for mode in args.mode.split(","):
                r = measure(
                    mode,
                    n,
                    size,
                    path,
                    prep,
                    modulus=modulus,
                    bits=bits,
                    repeat=args.repeat,
                    timeout=args.timeout,
                    need=need,
                )
                off = f"{r['offline']:10.1f}" if r["offline"] is not None else f"{'-':>10}"
                ok = r["ok"]
                failed |= not ok
                print(
                    f"{path:<7}{mode:<8}{prep:<9}{n:>2}{r['e2e']:9.1f}{off}{r['online']:9.2f}"
                    f"{r['rate']:9.1f}"
                    f"{r['kb']:9.1f}{r['cpu']:8.0f}{r['rss']:13.0f}{r['per_party']:10.0f}"
                    f"{'~' if r['shared'] else ' '}"
                    f"  {'ok' if ok else 'FAIL'}",
                    flush=True,
                )
    print(
        f"peak RSS: memory = the one process of all n parties (~: its n-th part); procs = the largest "
        f"party's own. MP-SPDZ: {MP_SPDZ_RSS_MB / 1e3:.2f} GB per party on this run (the issue's figure)."
    )
    if failed:
        print("CORRECTNESS CHECK FAILED: some revealed x < y differs from numpy's")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
