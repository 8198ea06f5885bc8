"""The pooled path (owner-private rows) beside the row-level path (every row secret-shared), end to end.

Each workload runs as a deployment would: 3 parties, **one OS process each** (this script started
again with ``--party i``), each building ``actors.Party(config)`` from a cluster made by
``actors.pki.make_cluster`` in a temporary directory (a fresh CA, mutually authenticated TLS 1.3 on
loopback), MASCOT preprocessing (the config's ``[pool]`` watermarks sized to the program's plan by
``Watermarks.for_plan``, so nothing is over-produced), each party generating ITS OWN rows from the
public fixed seed. Per party it reports its times, its result, its peak RSS
(``getrusage(RUSAGE_SELF).ru_maxrss``) and its bytes sent (``StreamLinks.bytes_sent``: payload
crossing the links, framing included, TLS records not). The parent prints the table and checks
the results against the plaintext (``fraud.plaintext``) or scikit-learn (``LinearRegression`` on the
union).

What is timed: **end to end** is from the first party's ``Party(config)`` to the last party's result
(``time.monotonic``: one clock for every process on the machine): TLS connections, the MASCOT set-up
(base OTs), making exactly the planned preprocessing (**offline**: until every party's pools hold
the plan), then the program on the full pools (**online**), the owners' local numpy passes included.
Process start, imports and data generation are printed apart. The plan itself (a dry run on the
INSECURE dealer, ``protocols.preprocessing.plan``, in the parent) is not part of the time.

Workloads:

1. fraud statistics (``fraud.bank_program``, the pooled path) at ``--sizes`` rows in total (equal
   thirds per bank); the row-level program (``fraud.bank_program_rows``) is run below 6,000 rows and
   within 10 minutes; from 6,000 rows on it is NOT run: its items come from the plan (or a linear
   extrapolation, marked so) and its time and MB from the measured items/s and MB/item of the
   smallest measured row-level run, marked "estimated, not run".
2. linear regression (``regression.linear_regression``, pooled) on 10^6 rows x 20 features in total
   (synthetic: scales from 10^-2 to 10^3, a known coefficient vector plus noise, fixed seed), split
   over the 3 parties; compared with scikit-learn's ``LinearRegression`` on the union. The
   row-level figure is estimated only.

    python benchmarks/local_bench.py [--only fraud|linreg] [--sizes 60,6000,1000000,3000000]
                                     [--no-rows] [--transport tls|memory]

``--transport memory`` runs the three parties in ONE process (``local_cluster``, the in-process
transport, exact payload counting as ``offline_bench.py`` does): RSS is then that process's, not
per party.
"""

from __future__ import annotations

import time

T_LAUNCH = time.monotonic()  # a party process's start, before its imports

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import traceback  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import structlog  # noqa: E402
import trio  # noqa: E402

N = 3
BATCH = 4096  # MASCOT batches of at most this many items (Watermarks.for_plan); the figures quoted used it
DEFAULT_SIZES = (60, 6_000, 300_000, 1_000_000, 3_000_000)
ROWS_BELOW = 6_000  # the row-level program is run below this many rows, estimated from it on
ROWS_TIMEOUT = 600.0  # the row-level run must finish within 10 minutes
POOLED_TIMEOUT = 1800.0
PLAN_CAP = 60.0  # the row-level plan at 6,000 rows: measured if it takes at most a minute
LINREG_ROWS = 1_000_000
LINREG_FEATURES = 20
LINREG_SEED = 2031
ISSUE_ROWS_MB = 7_810.0  # the issue's row-level figure: MB exchanged for 60 rows
ISSUE_ROWS_N = 60
KINDS = ("triple", "bit", "square", "random")

# ---------------------------------------------------------------------------------------- helpers


def quiet_logs() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))


def thirds(total: int, parts: int = N) -> tuple[int, ...]:
    """``total`` rows in equal shares (the remainder to the first parties)."""
    base, extra = divmod(total, parts)
    return tuple(base + (1 if i < extra else 0) for i in range(parts))


def maxrss_mb() -> float:
    """``getrusage(RUSAGE_SELF).ru_maxrss`` in MB (Linux: kilobytes). Caution: Linux carries the
    parent's high-water mark at fork into an exec'd child's ``ru_maxrss`` (``posix_spawn``/``vfork`` share
    the parent's memory map until ``exec``), so in a party process started by a large parent this
    is at least the parent's RSS at that moment, not the party's own peak."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def hwm_mb() -> float:
    """The process's own peak resident set: ``VmHWM`` of ``/proc/self/status`` (the high-water mark of
    this process's memory map, which ``exec`` starts afresh); ``ru_maxrss`` where there is no /proc."""
    try:
        for ln in Path("/proc/self/status").read_text().splitlines():
            if ln.startswith("VmHWM:"):
                return int(ln.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return maxrss_mb()


def items_of(need: dict[str, int]) -> int:
    return sum(v for k, v in need.items() if k in KINDS or k.startswith("mask"))


def masks_of(need: dict[str, int]) -> list[int]:
    return [int(need.get(f"mask{i}", 0)) for i in range(N)]


def jsonable(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON: {type(o).__name__}")


# ---------------------------------------------------------------------------------------- data
def linreg_truth(d: int, seed: int = LINREG_SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """Public parameters of the synthetic regression: feature scales (10^-2 .. 10^3, shuffled),
    offsets, the true coefficients (each feature contributes about equally to y), intercept, noise."""
    rng = np.random.default_rng(seed)
    scales = 10.0 ** np.linspace(-2.0, 3.0, d)
    rng.shuffle(scales)
    offsets = scales * rng.uniform(-3.0, 3.0, d)
    coef = rng.uniform(-2.0, 2.0, d) / scales
    return scales, offsets, coef, 5.0, 1.0


def linreg_data(total: int, d: int, party: int, seed: int = LINREG_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Party ``party``'s rows of the synthetic regression: only its own (its own stream of the seed).
    Neighbouring features are correlated (0.3 before scaling)."""
    scales, offsets, coef, intercept, noise = linreg_truth(d, seed)
    n = thirds(total)[party]
    rng = np.random.default_rng([seed, party])
    z = rng.standard_normal((n, d))
    z[:, 1:] += 0.3 * z[:, :-1]
    x = z * scales + offsets
    y = x @ coef + intercept + rng.normal(0.0, noise, n)
    return x, y


# ---------------------------------------------------------------------------------------- programs
async def linreg_program(s: Any, parts: list[Any]) -> dict[str, Any]:
    """The pooled path: each party's own rows (``parts[s.party]``; the others' entries are None)."""
    from protocols.apps import regression as rg

    x, y = parts[s.party]
    m = await rg.linear_regression(s, x, y)
    return {"coef": [float(c) for c in m.coef], "intercept": float(m.intercept)}


async def linreg_rows_program(s: Any, parts: list[Any]) -> dict[str, Any]:
    """The row-level path: every row secret-shared, the regression on the joint secret table."""
    from protocols.apps import regression as rg
    from protocols.apps.table import share_table

    x, y = parts[s.party]
    d = x.shape[1]
    t = await share_table(s, np.column_stack([x, y]))
    m = await rg.linear_regression(s, t.x[:, np.arange(d)], t.x[:, d])
    return {"coef": [float(c) for c in m.coef], "intercept": float(m.intercept)}


def program(job: dict[str, Any]) -> Any:
    from protocols.apps import fraud

    return {
        "fraud": fraud.bank_program,
        "fraud_rows": fraud.bank_program_rows,
        "linreg": linreg_program,
    }[job["workload"]]


def own_data(job: dict[str, Any], party: int) -> list[Any]:
    """``parts`` with only this party's entry: what the program at ``party`` reads."""
    from protocols.apps import fraud

    parts: list[Any] = [None] * N
    if job["workload"] == "linreg":
        parts[party] = linreg_data(job["rows"], job["features"], party, job["seed"])
    else:
        parts[party] = fraud.bank_data(tuple(job["sizes"]))[party]  # the others' rows are dropped here
    return parts


def fraud_result(r: dict[str, Any]) -> dict[str, Any]:
    return {k: (np.asarray(v).tolist() if k == "histogram" else v) for k, v in r.items()}


# ---------------------------------------------------------------------------------------- a party
async def party_main(job: dict[str, Any], party: int) -> dict[str, Any]:
    import actors
    from actors.config import load_config

    t_imported = time.monotonic()
    parts = own_data(job, party)
    t_data = time.monotonic()
    rss_data = hwm_mb()
    prog = program(job)
    need = job["need"]
    t_start = time.monotonic()
    cfg = load_config(job["configs"][party])
    async with actors.Party(cfg) as p:
        assert p.offline is not None, "the config's preprocessing must be MASCOT"
        off = p.offline
        await off.wait_for(need)
        t_ready = time.monotonic()
        sent_ready = p.links.bytes_sent
        off.stop_refills()  # the job's material is made: no refills while it is consumed
        out = await p.run(prog, parts, session=job["session"])
        t_result = time.monotonic()
        sent = p.links.bytes_sent
        rss, ru = hwm_mb(), maxrss_mb()
        rec = {
            "party": party,
            "t_launch": T_LAUNCH,
            "t_imported": t_imported,
            "t_data": t_data,
            "t_start": t_start,
            "t_ready": t_ready,
            "t_result": t_result,
            "sent_ready": sent_ready,
            "sent": sent,
            "rss_data_mb": rss_data,
            "rss_mb": rss,
            "ru_maxrss_mb": ru,
            "result": fraud_result(out) if job["workload"].startswith("fraud") else out,
        }
        print("LOCAL_BENCH " + json.dumps(rec, default=jsonable), flush=True)
        # stay up until every party has its result: our messages may still be needed
        await trio.to_thread.run_sync(sys.stdin.readline)
    return rec


async def memory_main(job: dict[str, Any]) -> None:
    """``--transport memory``: the 3 parties in this one process (``local_cluster``)."""
    import actors
    from actors.offline import Watermarks

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    t_imported = time.monotonic()
    per = [own_data(job, i) for i in range(N)]
    t_data = time.monotonic()
    rss_data = hwm_mb()
    prog = program(job)
    need = job["need"]
    marks = Watermarks.for_plan(need, BATCH)
    t_start = time.monotonic()
    async with actors.local_cluster(N, transport="memory", preprocessing="mascot", watermarks=marks) as c:
        assert c.hub is not None
        await c.stock(need, poll=0.05)
        t_ready = time.monotonic()
        sent_ready = list(c.hub.bytes_sent)
        outs = await c.run(prog, per_party=[(parts,) for parts in per])
        t_result = time.monotonic()
        sent = list(c.hub.bytes_sent)
    rss, ru = hwm_mb(), maxrss_mb()
    for i in range(N):
        rec = {
            "party": i,
            "shared_process": True,
            "t_launch": T_LAUNCH,
            "t_imported": t_imported,
            "t_data": t_data,
            "t_start": t_start,
            "t_ready": t_ready,
            "t_result": t_result,
            "sent_ready": sent_ready[i],
            "sent": sent[i],
            "rss_data_mb": rss_data,
            "rss_mb": rss,
            "ru_maxrss_mb": ru,
            "result": fraud_result(outs[i]) if job["workload"].startswith("fraud") else outs[i],
        }
        print("LOCAL_BENCH " + json.dumps(rec, default=jsonable), flush=True)


def child(argv: list[str]) -> int:
    """``--party i --job FILE`` (one party over TLS) or ``--party all --job FILE`` (memory)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--party", required=True)
    ap.add_argument("--job", required=True)
    args = ap.parse_args(argv)
    quiet_logs()
    job = json.loads(Path(args.job).read_text())
    try:
        if args.party == "all":
            trio.run(memory_main, job)
        else:
            trio.run(party_main, job, int(args.party))
    except BaseException as e:  # noqa: BLE001 (reported to the parent, which prints it)
        err = "".join(traceback.format_exception(e))
        print("LOCAL_BENCH " + json.dumps({"party": args.party, "error": err[-4000:]}), flush=True)
        return 1
    return 0


# ---------------------------------------------------------------------------------------- the parent
def write_cluster(root: Path, need: dict[str, int]) -> list[str]:
    """A cluster CA and 3 party configs (MASCOT, pools sized to the plan) under ``root``."""
    from actors.cluster import planned_configs
    from actors.config import load_config
    from actors.offline import Watermarks

    marks = Watermarks.for_plan(need, BATCH)
    paths = planned_configs(root, N, need, BATCH)
    for path in paths:  # what the parties will read: the watermarks must survive the file
        if load_config(path).watermarks != marks:
            raise SystemExit(
                f"the config cannot express the planned watermarks: {load_config(path).watermarks}"
            )
    return [str(p) for p in paths]


def run_parties(job: dict[str, Any], transport: str, timeout: float) -> dict[str, Any]:
    """Start the party processes for ``job``, collect their records (or ``{"error": ...}``)."""
    with tempfile.TemporaryDirectory(prefix="spdz-local-bench-") as tmp:
        root = Path(tmp)
        job = dict(job, session=f"local-bench-{job['workload']}-{uuid.uuid4().hex[:8]}")
        if transport == "tls":
            job["configs"] = write_cluster(root / "cluster", job["need"])
            who = [str(i) for i in range(N)]
        else:
            who = ["all"]
        job_file = root / "job.json"
        job_file.write_text(json.dumps(job))
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "RUNTIME_DIRECTORY")}
        procs, logs = [], []
        for w in who:
            log = open(root / f"party-{w}.log", "wb")  # noqa: SIM115 (closed below)
            logs.append(log)
            procs.append(
                subprocess.Popen(  # noqa: S603 (this script, our own arguments)
                    [sys.executable, str(Path(__file__).resolve()), "--party", w, "--job", str(job_file)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    env=env,
                    cwd=ROOT,
                )
            )
        records: list[dict[str, Any]] = []
        lock = threading.Lock()
        done = threading.Event()
        expected = N

        def reader(p: subprocess.Popen[bytes]) -> None:
            assert p.stdout is not None
            for raw in p.stdout:
                line = raw.decode(errors="replace").strip()
                if line.startswith("LOCAL_BENCH "):
                    rec = json.loads(line[len("LOCAL_BENCH ") :])
                    with lock:
                        records.append(rec)
                        if "error" in rec or sum("error" not in r for r in records) >= expected:
                            done.set()
            if p.wait() != 0:  # a process that ends badly (or without reporting) is a failure
                with lock:
                    if not done.is_set():
                        records.append({"party": "?", "error": f"a party process exited with {p.returncode}"})
                        done.set()

        threads = [threading.Thread(target=reader, args=(p,), daemon=True) for p in procs]
        for t in threads:
            t.start()
        finished = done.wait(timeout)
        with lock:
            failed = any("error" in r for r in records)
        for p in procs:  # release the parties (they wait for this once they have their result)
            try:
                assert p.stdin is not None
                p.stdin.write(b"exit\n")
                p.stdin.close()
            except (BrokenPipeError, OSError):
                pass
        for p in procs:
            try:
                p.wait(30 if finished and not failed else 0)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for log in logs:
            log.close()
        errors = [r["error"] for r in records if "error" in r]
        if not finished:
            return {"timeout": timeout}
        if errors:
            tails = []
            for w in who:
                text = (root / f"party-{w}.log").read_text(errors="replace")[-1500:]
                if text.strip():
                    tails.append(f"--- party {w} stderr ---\n{text}")
            return {"error": "\n".join(errors + tails)}
        records.sort(key=lambda r: int(r["party"]))
        return {"records": records}


def summarise(res: dict[str, Any]) -> dict[str, Any]:
    """Cluster-level figures from the per-party records."""
    recs = res["records"]
    t0 = min(r["t_start"] for r in recs)
    ready = max(r["t_ready"] for r in recs)
    end = max(r["t_result"] for r in recs)
    return {
        "e2e": end - t0,
        "offline": ready - t0,
        "online": end - ready,
        "with_start": end - min(r["t_launch"] for r in recs),
        "data": max(r["t_data"] - r["t_imported"] for r in recs),
        "mb": sum(r["sent"] for r in recs) / 1e6,
        "mb_offline": sum(r["sent_ready"] for r in recs) / 1e6,
        "rss": [r["rss_mb"] for r in recs],
        "rss_data": [r["rss_data_mb"] for r in recs],
        "ru_maxrss": [r["ru_maxrss_mb"] for r in recs],
        "shared": bool(recs[0].get("shared_process")),
        "results": [r["result"] for r in recs],
    }


async def _plan(prog: Any, *args: Any, cap: float | None = None) -> tuple[dict[str, int] | None, float]:
    from actors.plan import preprocessing_plan

    t = time.perf_counter()
    if cap is None:
        need = await preprocessing_plan(prog, N, *args)
    else:
        need = None
        with trio.move_on_after(cap):
            need = await preprocessing_plan(prog, N, *args)
    return need, time.perf_counter() - t


def plan(prog: Any, *args: Any, cap: float | None = None) -> tuple[dict[str, int] | None, float]:
    return trio.run(functools.partial(_plan, prog, *args, cap=cap))


def extrapolate(points: list[tuple[int, dict[str, int]]], rows: int) -> dict[str, int]:
    """Item counts at ``rows``, linear in the rows through the two largest measured plans."""
    (n1, a), (n2, b) = sorted(points)[-2:]
    out = {}
    for k in set(a) | set(b):
        slope = (b.get(k, 0) - a.get(k, 0)) / (n2 - n1)
        out[k] = max(0, round(b.get(k, 0) + slope * (rows - n2)))
    return out


# ---------------------------------------------------------------------------------------- printing
W0, W1 = 44, 34


def line(label: str, a: str, b: str = "") -> None:
    print(f"  {label:{W0}} {a:>{W1}} {b:>{W1}}", flush=True)


def fnum(v: float, digits: int = 0) -> str:
    return f"{v:,.{digits}f}"


def fsec(v: float) -> str:
    return f"{v:,.1f}" if v < 1000 else f"{v:,.0f}"


def fmb(v: float) -> str:
    return f"{v:,.1f}" if v >= 10 else f"{v:,.3f}"


def items_cells(need: dict[str, int] | None, tag: str = "") -> tuple[str, str, str]:
    if need is None:
        return "-", "-", "-"
    t = f" ({tag})" if tag else ""
    kinds = " / ".join(fnum(need.get(k, 0)) for k in KINDS)
    return fnum(items_of(need)) + t, kinds, " / ".join(fnum(m) for m in masks_of(need))


def rss_cell(s: dict[str, Any], key: str = "rss") -> str:
    if s["shared"]:
        return f"{s[key][0]:,.0f} (one process, 3 parties)"
    return " / ".join(f"{v:,.0f}" for v in s[key])


def header(args: argparse.Namespace) -> None:
    cpu = platform.processor() or "?"
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        mem = f"{kb / 1024 / 1024:.1f} GB"
    except (OSError, IndexError, ValueError):
        pass
    git = ["git", "describe", "--always", "--dirty"]
    rev = subprocess.run(git, cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()  # noqa: S603, S607
    rev = rev or "?"
    print("trio-spdz local benchmark: the pooled path (owner-private rows) beside the row-level path")
    print(f"  machine: {os.cpu_count()} cores ({cpu}), {mem} RAM, {platform.platform()}")
    print(
        f"  python {platform.python_version()}, numpy {np.__version__}, trio-spdz {rev}, "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}"
    )
    if args.transport == "tls":
        print(f"  {N} parties, one OS process each (actors.Party(config)), mutually authenticated TLS 1.3 on")
        print(f"  loopback (fresh cluster CA per run), sharing the machine's {os.cpu_count()} cores")
    else:
        print(f"  {N} parties in ONE process (local_cluster, in-process memory transport, exact byte count)")
    print("  preprocessing: MASCOT (base OT, KOS, COPE, sacrifice), pools sized to the plan")
    print("  (Watermarks.for_plan in each party's config [pool]); field 2^127-1")
    start = "Party(config)" if args.transport == "tls" else "local_cluster"
    print(f"  end to end = first party's {start} -> last party's result: connect, MASCOT set-up")
    print("  (base OTs), the planned preprocessing (offline), the program (online); MB = all parties'")
    print("  payload bytes sent; peak RSS = each party process's own high-water mark (VmHWM).")
    print("  * ru_maxrss of a process started by a big parent includes the parent's RSS at the fork")
    print("    (Linux carries it through exec), so it is printed for reference only")
    print(flush=True)


# ---------------------------------------------------------------------------------------- workloads
class Rate:
    """The measured MASCOT end-to-end rate of a row-level run, for the estimates."""

    def __init__(self) -> None:
        self.items_per_s: float | None = None
        self.mb_per_item: float | None = None
        self.mb_per_row: float | None = None
        self.source = ""


def run_fraud(args: argparse.Namespace, targets: dict[str, Any]) -> None:
    from protocols.apps import fraud

    sizes = sorted(args.sizes)
    rate = Rate()
    pooled_rate = Rate()
    rows_points: list[tuple[int, dict[str, int]]] = []
    plan_times: dict[int, float] = {}

    def rows_plan(total: int, cap: float | None = None) -> tuple[dict[str, int] | None, str]:
        for n, need in rows_points:
            if n == total:
                return need, "plan"
        need, secs = plan(fraud.bank_program_rows, fraud.bank_data(thirds(total)), cap=cap)
        plan_times[total] = secs
        if need is None:
            return None, f"plan took over {cap:.0f} s"
        rows_points.append((total, need))
        return need, "plan"

    # the row-level plan: 60 and 600 rows, and 6,000 if it takes at most a minute
    for n in (60, 600):
        rows_plan(n)
    if any(s >= ROWS_BELOW for s in sizes):
        need6k, _ = rows_plan(6_000, cap=PLAN_CAP)
        note = f"{plan_times[6_000]:.1f} s" if need6k is not None else f"over {PLAN_CAP:.0f} s: not used"
        print(f"  row-level plan (dry run on the dealer) at 6,000 rows took {note}", flush=True)
    print(flush=True)

    for total in sizes:
        sizes3 = thirds(total)
        banks = fraud.bank_data(sizes3)
        want = fraud.plaintext(banks)
        need, t_plan = plan(fraud.bank_program, banks)
        assert need is not None
        print(
            f"== fraud statistics, {total:,} rows in total ({' + '.join(f'{s:,}' for s in sizes3)})",
            flush=True,
        )
        res = run_parties(
            {"workload": "fraud", "sizes": sizes3, "need": need}, args.transport, POOLED_TIMEOUT
        )
        pooled = summarise(res) if "records" in res else None

        rows: dict[str, Any] | None = None
        rows_need: dict[str, int] | None
        rows_tag = "plan"
        rows_note = ""
        if total < ROWS_BELOW:
            rows_need, _ = rows_plan(total)
            if args.no_rows:
                rows_note = "not run (--no-rows)"
            else:
                r = run_parties(
                    {"workload": "fraud_rows", "sizes": sizes3, "need": rows_need},
                    args.transport,
                    ROWS_TIMEOUT,
                )
                if "records" in r:
                    rows = summarise(r)
                    if rate.items_per_s is None:  # the smallest measured run is the reference
                        rate.items_per_s = items_of(rows_need) / rows["e2e"]
                        rate.mb_per_item = rows["mb"] / items_of(rows_need)
                        rate.mb_per_row = rows["mb"] / total
                        rate.source = f"the measured {total:,}-row row-level MASCOT run"
                elif "timeout" in r:
                    rows_note = f"did not finish within {ROWS_TIMEOUT / 60:.0f} min"
                else:
                    rows_note = "FAILED"
                    print("  row-level run failed:\n" + r["error"], flush=True)
        else:
            exact = dict(rows_points).get(total)
            if exact is not None:
                rows_need, rows_tag = exact, "plan"
            else:
                rows_need, rows_tag = extrapolate(rows_points, total), "extrapolated"
        if pooled is not None and pooled_rate.items_per_s is None:
            pooled_rate.items_per_s = items_of(need) / pooled["e2e"]
            pooled_rate.mb_per_item = pooled["mb"] / items_of(need)
            pooled_rate.source = f"the pooled {total:,}-row run (no row-level run measured)"

        # ---- the block
        line("", "pooled (owner-private rows)", "row-level (every row shared)")
        est = rate if rate.items_per_s is not None else pooled_rate
        if pooled is None:
            what = f"timed out after {res['timeout']:.0f} s" if "timeout" in res else "FAILED"
            line("end to end, s", what, "")
            if "error" in res:
                print("  pooled run failed:\n" + res["error"], flush=True)
        if rows is not None:
            rcells = {
                "e2e": fsec(rows["e2e"]),
                "off": fsec(rows["offline"]),
                "on": fsec(rows["online"]),
                "start": fsec(rows["with_start"]),
                "mb": fmb(rows["mb"]),
                "mbrow": fmb(rows["mb"] / total),
                "rss": rss_cell(rows),
                "rssd": rss_cell(rows, "rss_data"),
                "ru": rss_cell(rows, "ru_maxrss"),
            }
        elif total >= ROWS_BELOW and rows_need is not None and est.items_per_s is not None:
            sec = items_of(rows_need) / est.items_per_s
            mb = items_of(rows_need) * (est.mb_per_item or 0.0)
            rcells = {
                "e2e": f"~{fsec(sec)} (estimated, not run)",
                "off": "-",
                "on": "-",
                "start": "-",
                "mb": f"~{fmb(mb)} (estimated, not run)",
                "mbrow": f"~{fmb(mb / total)} (estimated)",
                "rss": "not run",
                "rssd": "-",
                "ru": "-",
            }
        else:
            rcells = dict.fromkeys(("e2e", "off", "on", "start", "mb", "mbrow", "rss", "rssd", "ru"), "-")
            rcells["e2e"] = rows_note or "not run"
        if pooled is not None:
            line("end to end (Party start -> result), s", fsec(pooled["e2e"]), rcells["e2e"])
            line("  offline: set-up + planned MASCOT, s", fsec(pooled["offline"]), rcells["off"])
            line("  online: the program on full pools, s", fsec(pooled["online"]), rcells["on"])
            line("  incl. process start, imports, own data, s", fsec(pooled["with_start"]), rcells["start"])
        pi = items_cells(need)
        ri = items_cells(rows_need, rows_tag if rows_tag != "plan" or total >= ROWS_BELOW else "")
        line("preprocessing items consumed", pi[0], ri[0])
        line("  triples / bits / squares / randoms", pi[1], ri[1])
        line("  input masks, owner 0 / 1 / 2", pi[2], ri[2])
        rows_plan_t = plan_times.get(total)
        line(
            "  plan (dry run on the dealer), s",
            f"{t_plan:.1f}",
            f"{rows_plan_t:.1f}"
            if rows_plan_t is not None and rows_need is not None and rows_tag == "plan"
            else "-",
        )
        if pooled is not None:
            line("MB exchanged (all parties)", fmb(pooled["mb"]), rcells["mb"])
            line(
                "  of which offline (set-up + preprocessing)",
                fmb(pooled["mb_offline"]),
                fmb(rows["mb_offline"]) if rows is not None else "-",
            )
            line("  MB per row", fmb(pooled["mb"] / total), rcells["mbrow"])
            line("peak RSS per party (0 / 1 / 2), MB", rss_cell(pooled), rcells["rss"])
            line("  before Party(config) (own data made), MB", rss_cell(pooled, "rss_data"), rcells["rssd"])
            line("  ru_maxrss as getrusage reports it, MB*", rss_cell(pooled, "ru_maxrss"), rcells["ru"])
            ok_p = check_fraud(pooled, want, "pooled")
            ok_r = check_fraud(rows, want, "row-level") if rows is not None else None
            line(
                "results vs fraud.plaintext",
                "match" if ok_p else "MISMATCH",
                "-" if ok_r is None else ("match" if ok_r else "MISMATCH"),
            )
        if total >= ROWS_BELOW and est.items_per_s is not None:
            print(
                f"  (row-level estimate: {est.items_per_s:,.0f} items/s and "
                f"{est.mb_per_item or 0:.4f} MB/item from {est.source})",
                flush=True,
            )
        print(flush=True)
        if pooled is not None:
            targets.setdefault("fraud", {})[total] = {"pooled": pooled, "rows": rows, "ok": ok_p}
    targets["rows_rate"] = rate


def check_fraud(s: dict[str, Any], want: dict[str, Any], what: str) -> bool:
    from protocols.apps import fraud

    results = [dict(r, histogram=np.asarray(r["histogram"])) for r in s["results"]]
    if any(r != s["results"][0] for r in s["results"]):
        print(f"  !!! {what}: THE PARTIES DISAGREE ON THE RESULT: this is a bug", flush=True)
        return False
    lines, ok = fraud.report(results[0], want)
    if not ok:
        print(f"  !!! {what}: MISMATCH WITH THE PLAINTEXT", flush=True)
        print("\n".join(lines), flush=True)
    return ok


def run_linreg(args: argparse.Namespace, targets: dict[str, Any]) -> None:
    total, d = args.linreg_rows, args.features
    print(
        f"== linear regression, {total:,} rows x {d} features in total "
        f"({' + '.join(f'{s:,}' for s in thirds(total))}), scales 10^-2 .. 10^3",
        flush=True,
    )
    parts = [linreg_data(total, d, i) for i in range(N)]
    need, t_plan = plan(linreg_program, parts)
    assert need is not None
    res = run_parties(
        {"workload": "linreg", "rows": total, "features": d, "seed": LINREG_SEED, "need": need},
        args.transport,
        POOLED_TIMEOUT,
    )
    # the row-level path: estimated only, from its plan at 60 and 600 rows, extrapolated linearly
    pts = []
    for n in (60, 600):
        small = [linreg_data(n, d, i) for i in range(N)]
        nd, _ = plan(linreg_rows_program, small)
        assert nd is not None
        pts.append((n, nd))
    rows_need = extrapolate(pts, total)
    rate: Rate = targets.get("rows_rate") or Rate()
    line("", "pooled (owner-private rows)", "row-level (every row shared)")
    pooled = summarise(res) if "records" in res else None
    if rate.items_per_s is not None:
        est_s = f"~{fsec(items_of(rows_need) / rate.items_per_s)} (estimated, not run)"
        est_mb = f"~{fmb(items_of(rows_need) * (rate.mb_per_item or 0))} (estimated, not run)"
    else:
        est_s = est_mb = "no measured row-level rate"
    if pooled is None:
        line("end to end, s", "timed out" if "timeout" in res else "FAILED", est_s)
        if "error" in res:
            print("  run failed:\n" + res["error"], flush=True)
    else:
        line("end to end (Party start -> result), s", fsec(pooled["e2e"]), est_s)
        line("  offline: set-up + planned MASCOT, s", fsec(pooled["offline"]), "-")
        line("  online: the program on full pools, s", fsec(pooled["online"]), "-")
        line("  incl. process start, imports, own data, s", fsec(pooled["with_start"]), "-")
    pi, ri = items_cells(need), items_cells(rows_need, "extrapolated")
    line("preprocessing items consumed", pi[0], ri[0])
    line("  triples / bits / squares / randoms", pi[1], ri[1])
    line("  input masks, owner 0 / 1 / 2", pi[2], ri[2])
    line("  plan (dry run on the dealer), s", f"{t_plan:.1f}", "-")
    if pooled is None:
        print(flush=True)
        return
    line("MB exchanged (all parties)", fmb(pooled["mb"]), est_mb)
    line("  of which offline (set-up + preprocessing)", fmb(pooled["mb_offline"]), "-")
    line("peak RSS per party (0 / 1 / 2), MB", rss_cell(pooled), "not run")
    line("  before Party(config) (own data made), MB", rss_cell(pooled, "rss_data"), "-")
    line("  ru_maxrss as getrusage reports it, MB*", rss_cell(pooled, "ru_maxrss"), "-")
    if rate.items_per_s is not None:
        print(
            f"  (row-level estimate: {rate.items_per_s:,.0f} items/s and "
            f"{rate.mb_per_item or 0:.4f} MB/item from {rate.source})",
            flush=True,
        )

    # ---- against scikit-learn on the union
    agree = all(r == pooled["results"][0] for r in pooled["results"])
    if not agree:
        print("  !!! THE PARTIES DISAGREE ON THE MODEL: this is a bug", flush=True)
    got = pooled["results"][0]
    coef, icpt = np.asarray(got["coef"]), float(got["intercept"])
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    try:
        from sklearn.linear_model import LinearRegression
    except ImportError:
        print(
            "  scikit-learn is not installed (pip install -e '.[test]'): comparing with numpy's lstsq",
            flush=True,
        )
        sol = np.linalg.lstsq(np.column_stack([x, np.ones(len(x))]), y, rcond=None)[0]
        ref_coef, ref_icpt, ref = sol[:-1], float(sol[-1]), "numpy lstsq"
    else:
        lr = LinearRegression().fit(x, y)
        ref_coef, ref_icpt, ref = lr.coef_, float(lr.intercept_), "scikit-learn"
    want = np.append(ref_coef, ref_icpt)
    have = np.append(coef, icpt)
    absd = np.abs(have - want)
    reld = absd / np.maximum(np.abs(want), 1e-300)
    scales = linreg_truth(d)[0]
    worst = int(np.argmax(absd))
    worst_name = "intercept" if worst == d else f"coef {worst} (feature scale {scales[worst]:g})"
    line(f"largest |difference| from {ref}", f"{absd.max():.3g}", "")
    line("  where", worst_name, "")
    line(f"  {'secure':>10} / {ref}", f"{have[worst]:.6g} / {want[worst]:.6g}", "")
    line("largest relative difference", f"{reld.max():.3g}", "")
    line("  intercept: |difference|, relative", f"{absd[d]:.3g}, {reld[d]:.3g}", "")
    order = np.argsort(scales)
    print("  |difference| per coefficient, by feature scale:", flush=True)
    for j in order:
        print(
            f"    scale {scales[j]:>9.3g}  coef {want[j]:>12.6g}  secure {have[j]:>12.6g}  "
            f"|diff| {absd[j]:.2e}  rel {reld[j]:.2e}",
            flush=True,
        )
    print(flush=True)
    targets["linreg"] = {
        "pooled": pooled,
        "abs": float(absd.max()),
        "rel": float(reld.max()),
        "agree": agree,
        "rows": total,
        "d": d,
    }


def print_targets(targets: dict[str, Any]) -> None:
    print("== the issue's targets beside the figures")
    print(f"  {'target':58} {'measured':>30}  met")

    def row(what: str, got: str, ok: bool | None) -> None:
        print(f"  {what:58} {got:>30}  {'-' if ok is None else ('yes' if ok else 'NO')}", flush=True)

    fr = targets.get("fraud", {})
    if 300_000 in fr:
        s = fr[300_000]["pooled"]
        row(
            "spdz demo-like 3 x 100,000 rows <= 30 s (here: 3 processes)", f"{s['e2e']:.1f} s", s["e2e"] <= 30
        )
    rate: Rate = targets.get("rows_rate") or Rate()
    for n in (1_000_000, 3_000_000):
        if n not in fr:
            continue
        s = fr[n]["pooled"]
        row(f"fraud at {n:,} rows <= 60 s end to end", f"{s['e2e']:.1f} s", s["e2e"] <= 60)
        per = s["mb"] / n
        issue = ISSUE_ROWS_MB / ISSUE_ROWS_N
        row(
            f"  MB/row <= 1% of row-level ({issue:,.1f} MB/row, issue's 7,810/60)",
            f"{per:.2e} MB/row = {100 * per / issue:.1e} %",
            per <= 0.01 * issue,
        )
        if rate.mb_per_row is not None:
            row(
                f"  MB/row <= 1% of row-level ({rate.mb_per_row:,.1f} MB/row, measured here)",
                f"{100 * per / rate.mb_per_row:.1e} %",
                per <= 0.01 * rate.mb_per_row,
            )
        row("  results match fraud.plaintext", "match" if fr[n]["ok"] else "MISMATCH", fr[n]["ok"])
    lr = targets.get("linreg")
    if lr is not None:
        s = lr["pooled"]
        row(f"linear regression {lr['rows']:,} x {lr['d']} <= 60 s", f"{s['e2e']:.1f} s", s["e2e"] <= 60)
        row(
            "  coefficients within 1e-3 of scikit-learn (absolute)",
            f"max |diff| {lr['abs']:.2e}",
            lr["abs"] <= 1e-3,
        )
        row("  (relative, for reference)", f"max rel {lr['rel']:.2e}", lr["rel"] <= 1e-3)
    print(flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--party" in argv:
        return child(argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["fraud", "linreg"], help="one workload only")
    ap.add_argument(
        "--sizes",
        type=lambda v: [int(float(x)) for x in v.split(",") if x],
        default=list(DEFAULT_SIZES),
        help="fraud: rows in total, comma list (%(default)s)",
    )
    ap.add_argument("--no-rows", action="store_true", help="skip the measured row-level run")
    ap.add_argument("--transport", choices=["tls", "memory"], default="tls")
    ap.add_argument("--linreg-rows", type=lambda v: int(float(v)), default=LINREG_ROWS)
    ap.add_argument("--features", type=int, default=LINREG_FEATURES)
    args = ap.parse_args(argv)
    if min(args.sizes) < 2 * N:
        raise SystemExit("--sizes: at least 6 rows in total (2 per bank)")
    quiet_logs()
    header(args)
    targets: dict[str, Any] = {}
    t0 = time.monotonic()
    if args.only in (None, "fraud"):
        run_fraud(args, targets)
    if args.only in (None, "linreg"):
        run_linreg(args, targets)
    print_targets(targets)
    print(f"(benchmark wall time {time.monotonic() - t0:,.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
