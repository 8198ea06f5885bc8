"""Throughput of the OT extensions (KOS, SoftSpokenOT): random OTs per second, bytes per OT, and where
the time goes.

Run ``python benchmarks/ot_bench.py`` (``--log2m``, ``--repeats``, ``--ext kos,softspoken``, ``--k 2``
or ``--k 2,4,8`` for SoftSpokenOT's bits per block, ``--transport memory|stream|tls``). Both parties
run in this process over ``local_cluster``'s memory transport (or, with ``--transport``, framed byte
streams or real TLS 1.3 on loopback), so one extend's wall time includes *both* parties' work (on
one core, interleaved): the sender's and the receiver's PRG, transposes, check and hashing. The rate is
m over the mean wall time of ``repeats`` back-to-back extends (after one warm-up): the two parties'
extends overlap, so per-extend spans would double-count. The split sums each phase over both parties,
per extend (medians of the per-extend values), timing compute only (never across an ``await``, where
the peer runs); "other" is the xor of the corrections into the matrix, choice-bit packing and the
commitment, "reduce" (SoftSpokenOT) the xor sums of the leaf streams. The gap between the split's sum
and the wall time is allocation, messaging and Python overhead.

Bytes are what each end hands to its ``PairChannel`` (payload bytes: buffers at their size, plus a byte
per list and 9 per scalar, as the memory hub counts them), per OT of the timed extends and each way;
the memory transport makes them free, TLS on loopback charges their encryption and copies, and on a
real network the rate of the wordier extension falls first (KOS: 16 bytes per OT receiver -> sender,
SoftSpokenOT: 16/k).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import trio  # noqa: E402

import actors  # noqa: E402
from protocols.commitments import context_bytes  # noqa: E402
from protocols.net import PairChannel  # noqa: E402
from protocols.ot.kos import KOSReceiver, KOSSender  # noqa: E402
from protocols.ot.softspoken import DEFAULT_K, SoftSpokenReceiver, SoftSpokenSender  # noqa: E402
from protocols.prg import PRG  # noqa: E402

PHASES = ("prg", "transpose", "check", "hash", "other")  # KOS's
SOFTSPOKEN_PHASES = ("prg", "reduce", "transpose", "check", "hash", "other")
EXTENSIONS = ("kos", "softspoken")


def _payload_bytes(obj: Any) -> int:
    if isinstance(obj, (bytes, bytearray, str)):
        return len(obj)
    if isinstance(obj, (memoryview, np.ndarray)):
        return obj.nbytes
    if isinstance(obj, (list, tuple)):
        return sum(_payload_bytes(o) for o in obj) + 1
    return 9


class CountingChannel(PairChannel):
    """A ``PairChannel`` that adds up the payload bytes this end sends."""

    def __init__(self, net: Any, peer: int, channel: int) -> None:
        super().__init__(net, peer, channel)
        self.sent_bytes = 0

    async def send(self, msg: Any) -> None:
        self.sent_bytes += _payload_bytes(msg)
        await super().send(msg)


def _ends(ext: str, k: int | None) -> tuple[Any, Any, tuple[str, ...]]:
    if ext == "kos":
        return KOSSender, KOSReceiver, PHASES
    if ext == "softspoken":
        kk = DEFAULT_K if k is None else k
        return (
            lambda ctx: SoftSpokenSender(ctx, kk),
            lambda ctx: SoftSpokenReceiver(ctx, kk),
            SOFTSPOKEN_PHASES,
        )
    raise ValueError(f"unknown extension {ext!r} (known: {', '.join(EXTENSIONS)})")


async def _prog(s: Any, m: int, repeats: int, ext: str, k: int | None) -> dict[str, Any]:
    make_sender, make_receiver, phases_of = _ends(ext, k)
    ch = CountingChannel(s.net, 1 - s.party, 1)
    ctx = context_bytes(s.session_id, "ot-bench")
    t0 = time.perf_counter()
    end = make_sender(ctx) if s.party == 0 else make_receiver(ctx)
    await end.setup(ch)
    setup = time.perf_counter() - t0
    setup_bytes = ch.sent_bytes
    choices = PRG().random_words((m + 63) // 64)
    bits = np.unpackbits(choices.view(np.uint8), count=m, bitorder="little").astype(bool)
    spans: list[tuple[float, float]] = []
    phases: list[dict[str, float]] = []
    timed_from = 0
    for r in range(repeats + 1):
        if r == 1:
            timed_from = ch.sent_bytes  # after the warm-up
        before = {p: getattr(end.timings, p) for p in phases_of}
        start = time.perf_counter()
        if s.party == 0:
            await end.extend(ch, m)
        else:
            await end.extend(ch, bits)
        spans.append((start, time.perf_counter()))
        phases.append({p: getattr(end.timings, p) - before[p] for p in phases_of})
    return {
        "setup": setup,
        "setup_bytes": setup_bytes,
        "bytes": ch.sent_bytes - timed_from,
        "spans": spans[1:],
        "phases": phases[1:],
    }


async def bench(
    m: int, repeats: int, ext: str = "kos", k: int | None = None, transport: str = "memory"
) -> dict[str, Any]:
    """One extension's numbers: ``m``, ``wall`` (s per extend), ``split`` (s per phase), ``setup`` (s),
    ``s2r``/``r2s`` (bytes per OT sender -> receiver / receiver -> sender), ``setup_bytes`` (both ways)
    and ``k`` (SoftSpokenOT's, else ``None``)."""
    *_, phases_of = _ends(ext, k)
    async with actors.local_cluster(2, transport=transport, preprocessing="dealer") as c:
        res = await c.run(_prog, m, repeats, ext, k)
    # the parties' extends overlap (the receiver starts the next one while the sender still hashes), so
    # per-extend spans overstate the cost: use the whole run of timed extends
    spans = res[0]["spans"] + res[1]["spans"]
    wall = (max(e for _, e in spans) - min(s for s, _ in spans)) / repeats
    split = {
        p: statistics.median(a[p] + b[p] for a, b in zip(res[0]["phases"], res[1]["phases"], strict=True))
        for p in phases_of
    }
    return {
        "ext": ext,
        "k": (DEFAULT_K if k is None else k) if ext == "softspoken" else None,
        "m": m,
        "wall": wall,
        "split": split,
        "setup": max(r["setup"] for r in res),
        "s2r": res[0]["bytes"] / (m * repeats),
        "r2s": res[1]["bytes"] / (m * repeats),
        "setup_bytes": res[0]["setup_bytes"] + res[1]["setup_bytes"],
        "transport": transport,
    }


def _report(r: dict[str, Any], log2m: int, repeats: int) -> None:
    m, wall = r["m"], r["wall"]
    where = f"both parties in one process ({r['transport']} transport)"
    if r["ext"] == "kos":
        print(f"KOS OT extension, m = 2^{log2m} = {m}, {where}")
        print(f"  base-OT setup (128 Chou-Orlandi OTs): {r['setup'] * 1e3:8.1f} ms")
    else:
        print(f"SoftSpokenOT extension (k = {r['k']}), m = 2^{log2m} = {m}, {where}")
        print(f"  setup (base OTs + GGM trees):         {r['setup'] * 1e3:8.1f} ms")
    rate = m / wall
    print(f"  extend, mean of {repeats}:            {wall * 1e3:8.1f} ms  -> {rate:,.0f} random OTs/s")
    total = sum(r["split"].values())
    print("  time split, both parties (median per extend):")
    for p, v in r["split"].items():
        print(f"    {p:<10} {v * 1e3:8.1f} ms  {100 * v / total:5.1f} %")
    print(f"    {'(sum)':<10} {total * 1e3:8.1f} ms")
    print(
        f"  bytes per OT: receiver -> sender {r['r2s']:.3f}, sender -> receiver {r['s2r']:.3f} "
        f"(total {r['r2s'] + r['s2r']:.3f}); set-up {r['setup_bytes'] / 1024:.1f} KiB both ways"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log2m", type=int, default=20, help="OTs per extend: 2^LOG2M (default 20)")
    ap.add_argument("--repeats", type=int, default=5, help="timed extends (default 5)")
    ap.add_argument(
        "--ext", default=",".join(EXTENSIONS), help="comma-separated extensions (default kos,softspoken)"
    )
    ap.add_argument(
        "--k",
        default=str(DEFAULT_K),
        help=f"SoftSpokenOT bits per block, e.g. 2 or 2,4,8 (default {DEFAULT_K})",
    )
    ap.add_argument(
        "--transport", default="memory", choices=("memory", "stream", "tls"), help="(default memory)"
    )
    args = ap.parse_args(argv)
    exts = [e.strip() for e in args.ext.split(",") if e.strip()]
    ks = [int(k) for k in args.k.split(",") if k.strip()]
    for e in exts:
        if e not in EXTENSIONS:
            ap.error(f"unknown extension {e!r} (known: {', '.join(EXTENSIONS)})")
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    runs = [(e, k) for e in exts for k in (ks if e == "softspoken" else [None])]
    results = []
    for i, (e, k) in enumerate(runs):
        r = trio.run(bench, 1 << args.log2m, args.repeats, e, k, args.transport)
        if i:
            print()
        _report(r, args.log2m, args.repeats)
        results.append(r)
    if len(results) > 1:
        print()
        print(f"{'extension':<18}{'OTs/s':>14}{'bytes/OT':>10}  (total both ways)")
        for r in results:
            name = "KOS" if r["ext"] == "kos" else f"SoftSpoken k={r['k']}"
            print(f"{name:<18}{r['m'] / r['wall']:>14,.0f}{r['r2s'] + r['s2r']:>10.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
