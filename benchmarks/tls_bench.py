"""What the transport costs: secure mults/s over memory, in-memory byte streams and real TLS 1.3.

Same measurement as online_bench.py (3 parties, dealer triples stocked before the clock starts; timed:
one Beaver multiplication of two secret vectors and the public output of the product, with the MAC
checks it requires), run once per transport, all 3 parties in ONE process:

* ``memory``  frames handed over as Python objects (no bytes at all): the protocol's own cost;
* ``stream``  ``StreamLinks``/``PeerLink`` over in-memory byte streams: + framing, sequence numbers,
  acks, copies;
* ``tls``     the same links over TCP loopback and TLS 1.3 (``local_cluster(transport="tls")``):
  + the kernel and encryption.

In one process every byte is encrypted and decrypted on the one thread that also runs all three
parties' arithmetic, so the TLS overhead here is an upper bound for a deployment where each party
has its own process and core (the 3-process figure comes with the daemon's benchmark). Both wall
time and the process's CPU time are shown: on a machine shared with other jobs the wall figures
swing with the load, the CPU figures much less.

    python benchmarks/tls_bench.py [--size 1000000] [--repeat 3] [--moduli p127,p61]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import structlog  # noqa: E402
import trio  # noqa: E402
from online_bench import StockAll, mul_prog  # noqa: E402

import actors  # noqa: E402
from protocols.field import get_field  # noqa: E402

TRANSPORTS = ("memory", "stream", "tls")


async def measure(modulus: str, transport: str, n: int, repeat: int) -> tuple[float, float]:
    """Median mults per wall second and per CPU second over ``repeat`` runs (after one untimed
    warm-up that opens the links)."""
    async with actors.local_cluster(
        3,
        transport=transport,
        modulus=modulus,
        preprocessing="dealer",
        interceptors=dict.fromkeys(range(3), StockAll()),
        session_options={"check_bound": 1 << 40},
    ) as c:
        await c.run(mul_prog, 1000)
        wall, cpu = [], []
        for _ in range(repeat):
            res = await c.run(mul_prog, n)
            if not all(r[4] for r in res):
                raise SystemExit(f"benchmark produced a wrong product over {transport}")
            wall.append(n / (max(r[1] for r in res) - min(r[0] for r in res)))
            cpu.append(n / (max(r[3] for r in res) - min(r[2] for r in res)))
    return statistics.median(wall), statistics.median(cpu)


def _pct(base: float, x: float) -> str:
    """Extra time of rate ``x`` over rate ``base``, in percent."""
    return f"{base / x - 1:+.0%}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=float, default=1e6)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--moduli", default="p127,p61")
    args = ap.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    n = int(args.size)
    print(f"mul+output of {n:.0e}-element vectors, 3 parties in one process, dealer triples stocked")
    print(
        f"{'field':6} {'transport':9} {'mults/s':>11} {'vs memory':>10} {'mults/CPU-s':>12} {'vs memory':>10}"
    )
    for m in args.moduli.split(","):
        get_field(m)
        got = {t: trio.run(measure, m, t, n, args.repeat) for t in TRANSPORTS}
        (mw, mc), (sw, sc), (tw, tc) = got["memory"], got["stream"], got["tls"]
        for t, (w, c) in got.items():
            vs_w = _pct(mw, w) if t != "memory" else ""
            vs_c = _pct(mc, c) if t != "memory" else ""
            print(f"{m:6} {t:9} {w:>11,.0f} {vs_w:>10} {c:>12,.0f} {vs_c:>10}")
        print(
            f"{m:6} TLS overhead: wall {_pct(mw, tw)} over memory, {_pct(sw, tw)} over stream; "
            f"CPU {_pct(mc, tc)} over memory, {_pct(sc, tc)} over stream"
        )


if __name__ == "__main__":
    main()
