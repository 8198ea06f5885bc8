"""``spdz demo``: three banks compute joint fraud statistics without showing each other a transaction.

The program is the bank example's (``protocols/apps/fraud.py``, also ``examples/bank_fraud_stats.py``):
joint fraud rate, mean amounts of fraudulent and legitimate transactions, fraud rates abroad and at
home, correlations, and a histogram of amounts by secure comparison. Here it runs as a real
deployment would: three parties over mutually authenticated TLS 1.3 on loopback (a fresh cluster CA
in a temporary directory), MASCOT preprocessing made by the parties' offline services, every output
MAC-checked. The results are printed beside the plaintext ones computed on the union of the banks'
data, which no real party could do.

With TLS (the default) every bank is its own OS process (``python -m actors.demo --party i``), as
in a deployment: a fresh cluster CA and per-party configs in a temporary directory, each process an
``actors.Party(config)`` that makes its own bank's data, fills its MASCOT pools, runs the program and
reports its result to the demo, which checks that all three agree. ``--transport memory`` runs the
three parties in this process instead (``local_cluster``).

Offline and online are timed apart: the offline services first make exactly what the program will
consume (counted by a dry run on the insecure test dealer, which computes nothing that is used: see
``protocols.preprocessing.plan``), with a progress display; then the program runs on the filled
pools. The data is synthetic and public (a fixed seed). Every bank holds 100,000 transactions: each
summarises its own locally, so the cost of the MPC does not depend on that number.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import trio

from actors.plan import preprocessing_plan
from protocols.apps import fraud

from .cluster import Cluster, local_cluster, planned_configs
from .offline import Watermarks

DEMO_SIZES = (100_000, 100_000, 100_000)
BATCH = 2048  # measured: 1,240-1,330 items/s at n = 3 over TLS, against 1,120 at 4,096 (and half the RSS)


def _intro(banks: list[Any], transport: str, where: str) -> None:
    print("trio-spdz demo: three banks compute joint fraud statistics; nobody sees another's transactions")
    for i, (name, rows) in enumerate(zip(fraud.BANKS, banks, strict=True)):
        print(f"  party {i}: {name:16} {len(rows):>9,} card transactions (private{where})")
    print()
    if transport == "tls":
        print("  Network: mutually authenticated TLS 1.3 on loopback; a fresh cluster CA and one")
        print("  certificate per party (its id in the certificate) made in a temporary directory.")
    print("  Preprocessing: MASCOT (maliciously secure: base OT, KOS OT extension, COPE, sacrifice),")
    print("  made jointly by the three parties' offline services; no trusted dealer.")


def _report(results: list[dict[str, Any]], banks: list[Any]) -> bool | None:
    """Print the secure results beside the plaintext ones; whether all match (``None``: the parties
    disagree, a bug)."""
    if any(not fraud.same(r, results[0]) for r in results):
        print("parties disagree on the result: this is a bug")
        return None
    lines, ok = fraud.report(results[0], fraud.plaintext(banks))
    print()
    print("\n".join(lines))
    print()
    return ok


async def show_progress(c: Cluster, need: dict[str, int], fill: float) -> None:
    """Print the pool levels of party 0 until every pool holds what the program needs (one updating
    line on a terminal, a line per change otherwise)."""
    t0 = trio.current_time()
    tty = sys.stdout.isatty()
    last = ""
    while True:
        levels = c.parties[0].offline.metrics()["levels"] if c.parties[0].offline else {}
        parts = "  ".join(f"{k} {min(levels.get(k, 0), v):>6}/{v}" for k, v in need.items())
        done = all(levels.get(k, 0) >= v for k, v in need.items())
        line = f"  MASCOT [{trio.current_time() - t0:5.1f} s]  {parts}"
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


async def run_demo(transport: str = "tls", sizes: tuple[int, ...] = DEMO_SIZES) -> int:
    banks = fraud.bank_data(sizes)
    _intro(banks, transport, "")
    need = await preprocessing_plan(fraud.bank_program, 3, banks)
    order = ("triple", "bit", "square", "random")
    need = {k: need[k] for k in (*order, *sorted(k for k in need if k.startswith("mask"))) if need.get(k)}
    t0 = time.perf_counter()
    marks = Watermarks.for_plan(need, BATCH)
    async with local_cluster(3, transport=transport, preprocessing="mascot", watermarks=marks) as c:
        t_setup = time.perf_counter() - t0
        print(f"  the program consumes: {', '.join(f'{v:,} {k}s' for k, v in need.items())}")
        await show_progress(c, need, 0.25)
        t_offline = time.perf_counter() - t0
        for p in c.parties:  # the job's material is ready: no refills, so the online bytes are its own
            if p.offline is not None:
                p.offline.stop_refills()
        sent_offline = bytes_sent(c)
        t1 = time.perf_counter()
        results = await c.run(fraud.bank_program, banks)
        t_online = time.perf_counter() - t1
        sent = bytes_sent(c) - sent_offline
    ok = _report(results, banks)
    if ok is None:
        return 1
    where = "TLS 1.3 on loopback" if transport == "tls" else f"{transport} transport"
    print(f"  field 2^127-1, 3 parties in one process, {where}")
    print(
        f"  offline: set-up (base OTs) {t_setup:.2f} s, preprocessing ready after {t_offline:.1f} s, "
        f"{sent_offline / 1e6:,.0f} MB exchanged"
    )
    print(f"  online:  {t_online:.2f} s, {sent / 1e6:.2f} MB exchanged, every output MAC-checked")
    print("  result:", "all statistics match the plaintext computation" if ok else "MISMATCH")
    return 0 if ok else 1


def main(transport: str = "tls", sizes: tuple[int, ...] = DEMO_SIZES) -> int:
    if transport == "tls":
        return run_processes(sizes)
    return trio.run(run_demo, transport, sizes)


# ------------------------------------------------------------------------------ one process per bank
_TAG = "SPDZ_DEMO "


async def _party(job: dict[str, Any], party: int) -> None:
    """One bank: its own data, its Party, its pools filled, the program; reports on stdout."""
    from .party import Party

    def say(kind: str, **fields: Any) -> None:
        print(_TAG + json.dumps({"kind": kind, "party": party, **fields}), flush=True)

    banks: list[Any] = [None, None, None]
    banks[party] = fraud.bank_data(tuple(job["sizes"]))[party]
    need = job["need"]
    async with Party(job["configs"][party]) as p:
        off = p.offline
        assert off is not None
        t0 = time.monotonic()
        while True:
            levels = off.metrics()["levels"]
            say(
                "levels",
                levels={k: min(levels.get(k, 0), v) for k, v in need.items()},
                t=time.monotonic() - t0,
            )
            if off.holds(need):
                break
            await trio.sleep(0.25)
        off.stop_refills()
        sent0, t1 = p.links.bytes_sent, time.monotonic()
        out = await p.run(fraud.bank_program, banks, session=job["session"])
        t2 = time.monotonic()
        say(
            "result",
            result={k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in out.items()},
            ready=t1 - t0,
            online=t2 - t1,
            sent_offline=sent0,
            sent_online=p.links.bytes_sent - sent0,
        )
        await trio.to_thread.run_sync(sys.stdin.readline)  # stay until every bank has its result


def run_processes(sizes: tuple[int, ...] = DEMO_SIZES, timeout: float = 600.0) -> int:
    """The demo with one OS process per bank over TLS 1.3 on loopback (see the module docstring)."""
    banks = fraud.bank_data(sizes)
    _intro(banks, "tls", ", in its own process")
    # the cost does not depend on the rows: plan on a few of them
    need = trio.run(preprocessing_plan, fraud.bank_program, 3, fraud.bank_data((50, 50, 50)))
    order = ("triple", "bit", "square", "random")
    need = {k: need[k] for k in (*order, *sorted(k for k in need if k.startswith("mask"))) if need.get(k)}
    print(f"  the program consumes: {', '.join(f'{v:,} {k}s' for k, v in need.items())}")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="spdz-demo-") as tmp:
        root = Path(tmp)
        job = {"sizes": list(sizes), "need": need, "session": f"demo-{os.getpid()}"}
        job["configs"] = [str(p) for p in planned_configs(root / "cluster", 3, need, BATCH)]
        (root / "job.json").write_text(json.dumps(job))
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "RUNTIME_DIRECTORY")}
        procs = [
            subprocess.Popen(  # noqa: S603 (this module, our own arguments)
                [sys.executable, "-m", "actors.demo", "--party", str(i), "--job", str(root / "job.json")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=open(root / f"party{i}.err", "wb"),  # noqa: SIM115 (closed with the process)
                env=env,
            )
            for i in range(3)
        ]
        results: dict[int, dict[str, Any]] = {}
        lock = threading.Lock()
        done = threading.Event()
        tty, last = sys.stdout.isatty(), [""]

        def reader(i: int, proc: subprocess.Popen[bytes]) -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                text = raw.decode(errors="replace").strip()
                if not text.startswith(_TAG):
                    continue
                msg = json.loads(text[len(_TAG) :])
                with lock:
                    if msg["kind"] == "levels" and i == 0:
                        parts = "  ".join(f"{k} {msg['levels'][k]:>6}/{v}" for k, v in need.items())
                        full = all(msg["levels"][k] >= v for k, v in need.items())
                        line = f"  MASCOT [{time.perf_counter() - t0:5.1f} s]  {parts}"
                        if tty:
                            print("\r" + line, end="\n" if full else "", flush=True)
                        elif parts != last[0]:
                            print(line, flush=True)
                        last[0] = parts
                    elif msg["kind"] == "result":
                        results[i] = msg
                        if len(results) == 3:
                            done.set()
            if proc.wait() != 0:
                done.set()

        threads = [threading.Thread(target=reader, args=(i, p), daemon=True) for i, p in enumerate(procs)]
        for t in threads:
            t.start()
        finished = done.wait(timeout)
        elapsed = time.perf_counter() - t0
        for p in procs:
            try:
                assert p.stdin is not None
                p.stdin.write(b"exit\n")
                p.stdin.close()
            except OSError:
                pass
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if not finished or len(results) < 3:
            why = "timed out" if not finished else "a party process failed"
            for i in range(3):
                err = (root / f"party{i}.err").read_text(errors="replace").strip()
                if err:
                    print(f"--- party {i} ---\n{err[-1500:]}", file=sys.stderr)
            print(f"spdz demo: {why}", file=sys.stderr)
            return 1
    ok = _report([results[i]["result"] for i in range(3)], banks)
    if ok is None:
        return 1
    ready = max(r["ready"] for r in results.values())
    online = max(r["online"] for r in results.values())
    sent_off = sum(r["sent_offline"] for r in results.values())
    sent_on = sum(r["sent_online"] for r in results.values())
    print("  field 2^127-1, 3 parties in 3 processes, TLS 1.3 on loopback")
    print(f"  offline: preprocessing ready after {ready:.1f} s (set-up included), {sent_off / 1e6:,.0f} MB")
    print(f"  online:  {online:.2f} s, {sent_on / 1e6:.2f} MB exchanged, every output MAC-checked")
    print(f"  end to end {elapsed:.1f} s, from starting the parties to the last result")
    print("  result:", "all statistics match the plaintext computation" if ok else "MISMATCH")
    return 0 if ok else 1


def _child(argv: list[str]) -> int:
    import argparse

    import structlog

    ap = argparse.ArgumentParser(prog="python -m actors.demo")
    ap.add_argument("--party", type=int, required=True)
    ap.add_argument("--job", required=True)
    args = ap.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    job = json.loads(Path(args.job).read_text())
    trio.run(_party, job, args.party)
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
