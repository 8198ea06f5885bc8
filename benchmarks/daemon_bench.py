"""Daemons over TLS against the in-process memory transport: secure mults/s and MASCOT triples/s.

What is compared, per field (default p61):

* **mults/s**: the registered ``bench_mul`` program (``actors.programs``) with ``--size`` elements
  (default 10^6): the online phase of one Beaver multiplication of two secret vectors and the output
  of the product with its MAC checks, triples drawn before the clock. Run (a) by 3 parties in this
  process on the memory transport (``local_cluster``), and (b) by 3 ``spdz party`` daemons, one
  process each, over TLS 1.3 on loopback, submitted through their control sockets. Both use the
  INSECURE dealer for the triples, as ``online_bench.py`` does: making 10^6 MASCOT triples first
  would take minutes and is not what is measured here. Median of ``--repeat`` runs; the span is
  from the first party's start to the last party's end (``time.monotonic`` is one clock for every
  process on the machine).
* **triples/s**: MASCOT triple generation with the triple pool's watermarks set high, so the
  parties generate continuously: (a) the in-process memory cluster, party 0's counter sampled over
  ``--seconds``; (b) 3 MASCOT daemons over TLS, read from ``spdz status`` (the pool's ``generated``
  counter over the same window, and the offline service's own rate).

The machine has 2 cores: the in-process cluster runs its 3 parties on one Python thread (plus the
field's worker threads), the daemons are 3 processes sharing 2 cores. Neither is 3 machines.

    python benchmarks/daemon_bench.py [--size 1000000] [--repeat 3] [--field p61] [--seconds 20]

``--seconds 0`` measures the multiplications only.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import structlog  # noqa: E402
import trio  # noqa: E402

import actors  # noqa: E402
from actors import control, programs  # noqa: E402
from actors.cluster import free_ports  # noqa: E402
from actors.config import Address, Backoff, load_config, write_config  # noqa: E402
from actors.offline import Watermarks  # noqa: E402
from actors.pki import make_cluster  # noqa: E402

N = 3
KINDS = ("triple", "mask", "square", "bit", "random")


def span(results: list[dict[str, Any]]) -> float:
    if not all(r["ok"] for r in results):
        raise SystemExit("benchmark produced a wrong product")
    return max(r["t1"] for r in results) - min(r["t0"] for r in results)


# ---------------------------------------------------------------------------------------- in-process
async def memory_mults(field: str, size: int, repeat: int) -> float:
    prog = programs.get("bench_mul").run
    rates = []
    async with actors.local_cluster(N, modulus=field, preprocessing="dealer") as c:
        for _ in range(repeat):
            rates.append(size / span(await c.run(prog, np.asarray([size]))))
    return statistics.median(rates)


async def memory_triples(field: str, seconds: float, batch: int) -> float:
    marks = Watermarks(triple=(10**8, 10**8), mask=(0, 0), batch=dict.fromkeys(KINDS, batch))
    async with actors.local_cluster(N, modulus=field, preprocessing="mascot", watermarks=marks) as c:
        off = c.parties[0].offline
        assert off is not None
        await trio.sleep(1.0)  # past the ramp-up batches
        g0, t0 = off.generated.get("triple", 0), trio.current_time()
        await trio.sleep(seconds)
        return (off.generated.get("triple", 0) - g0) / (trio.current_time() - t0)


# ---------------------------------------------------------------------------------------- daemons
class Cluster:
    """3 ``spdz party`` processes on loopback, configs from ``spdz keygen``'s layout."""

    def __init__(self, root: Path, field: str, preprocessing: str, marks: Watermarks) -> None:
        self.root = root
        make_cluster(root, N)
        ports = free_ports(N)
        self.sockets = [root / f"party{i}" / "ctl.sock" for i in range(N)]
        self.procs: list[subprocess.Popen[bytes]] = []
        self.configs = []
        for i in range(N):
            path = root / f"party{i}" / "party.toml"
            cfg = dataclasses.replace(
                load_config(path),
                field=field,
                preprocessing=preprocessing,
                insecure_dealer=preprocessing == "dealer",
                listen=Address("127.0.0.1", ports[i]),
                peers={j: Address("127.0.0.1", ports[j]) for j in range(N) if j != i},
                control_socket=self.sockets[i],
                watermarks=marks,
                log_level="error",
                reconnect=Backoff(0.05, 0.5),
            )
            self.configs.append(write_config(cfg, path))

    def __enter__(self) -> Cluster:
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "RUNTIME_DIRECTORY")}
        for i in range(N):
            with open(self.root / f"party{i}" / "daemon.log", "ab") as log:
                self.procs.append(
                    subprocess.Popen(  # noqa: S603 (our own command line)
                        [sys.executable, "-m", "actors.cli", "party", "--config", str(self.configs[i])],
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=log,
                        env=env,
                        cwd=ROOT,
                    )
                )
        deadline = time.monotonic() + 60
        for i in range(N):
            while not self._ready(i):
                if time.monotonic() > deadline:
                    raise SystemExit(
                        f"party {i}'s daemon did not come up; see {self.root}/party{i}/daemon.log"
                    )
                time.sleep(0.1)
        return self

    def _ready(self, i: int) -> bool:
        if self.procs[i].poll() is not None:
            raise SystemExit(f"party {i}'s daemon exited; see {self.root}/party{i}/daemon.log")
        try:
            st = self.status(i)
        except control.ControlError:
            return False
        return all(link["up"] for link in st["links"].values()) and (
            st["pool"] is None or st["pool"]["ready"]
        )

    def status(self, i: int) -> dict[str, Any]:
        return control.call(self.sockets[i], {"op": "status"}, timeout=30)["status"]

    def submit_all(self, program: str, session: str, values: list[int]) -> list[Any]:
        def one(i: int) -> Any:
            req = {"op": "submit", "program": program, "session": session, "input": values, "timeout": 600}
            reply = control.call(self.sockets[i], req)
            if not reply["ok"]:
                raise SystemExit(f"party {i}: {reply['error']}")
            return reply["result"]

        with ThreadPoolExecutor(N) as pool:
            return list(pool.map(one, range(N)))

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


def daemon_mults(field: str, size: int, repeat: int) -> float:
    with (
        tempfile.TemporaryDirectory(prefix="spdz-bench-") as tmp,
        Cluster(Path(tmp), field, "dealer", Watermarks()) as c,
    ):
        return statistics.median(
            size / span(c.submit_all("bench_mul", f"bench-{k}", [size])) for k in range(repeat)
        )


def daemon_triples(field: str, seconds: float, batch: int) -> tuple[float, float]:
    marks = Watermarks(triple=(10**8, 10**8), mask=(0, 0), batch=dict.fromkeys(KINDS, batch))
    with (
        tempfile.TemporaryDirectory(prefix="spdz-bench-") as tmp,
        Cluster(Path(tmp), field, "mascot", marks) as c,
    ):
        time.sleep(1.0)  # past the ramp-up batches
        g0, t0 = c.status(0)["pool"]["generated"].get("triple", 0), time.monotonic()
        time.sleep(seconds)
        pool = c.status(0)["pool"]
        wall = (pool["generated"].get("triple", 0) - g0) / (time.monotonic() - t0)
        return wall, pool["per_second"].get("triple", 0.0)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=lambda v: int(float(v)), default=10**6, help="vector length (1e6)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--field", default="p61", choices=["p61", "p127"])
    ap.add_argument("--seconds", type=float, default=20.0, help="triple generation window (20; 0: skip)")
    ap.add_argument("--batch", type=int, default=8192, help="MASCOT triples per batch (8192)")
    args = ap.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))

    print(f"3 parties, field {args.field}; memory: one process; TLS: 3 spdz party daemons on loopback")
    mem_mul = trio.run(memory_mults, args.field, args.size, args.repeat)
    tls_mul = daemon_mults(args.field, args.size, args.repeat)
    rows = [(f"secure mults/s, n={args.size:.0e}, mul+output", mem_mul, tls_mul)]
    if args.seconds > 0:
        mem_tri = trio.run(memory_triples, args.field, args.seconds, args.batch)
        tls_tri, tls_tri_service = daemon_triples(args.field, args.seconds, args.batch)
        rows.append((f"MASCOT triples/s (batches of {args.batch})", mem_tri, tls_tri))
    print(f"{'measurement':44} {'memory':>12} {'TLS daemons':>12} {'TLS/memory':>11}")
    for what, mem, tls in rows:
        print(f"{what:44} {mem:>12,.0f} {tls:>12,.0f} {tls / mem:>10.2f}x")
    if args.seconds > 0:
        print(f"{'  (offline service own rate, TLS daemons)':44} {'':>12} {tls_tri_service:>12,.0f}")


if __name__ == "__main__":
    main()
