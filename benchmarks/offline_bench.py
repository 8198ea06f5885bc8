"""Throughput of the MASCOT offline phase (``protocols.mascot``): triples per second and bytes per triple.

Run ``python benchmarks/offline_bench.py`` (``--batch``, ``--repeats``, ``--quick``). For each of n = 2, 3
parties and p = 2^61-1, 2^127-1 it starts a fresh process (so "cold" really is cold: no warm allocator,
no started thread pool), runs every party of a ``local_cluster`` over the in-process memory transport,
and measures

* **setup**: all base OTs (Chou-Orlandi) of every ordered pair, both roles, for COPE and KOS;
* **cold**: setup plus the first batch of ``--batch`` triples, as a rate (``batch / (setup + first)``);
  also the first batch alone (``first``), which is what a fresh party pays per batch before warm-up;
* **warm**: the median over the later batches of the same parties;
* **bytes/triple**: payload bytes each party sent for the triple batches (setup excluded, reported
  apart), divided by the number of triples; the mean over parties.

All parties share this one process and its two cores (the parties' numpy work interleaves on trio's
thread, plus the field's thread pool), so a rate here is the rate of the *whole* n-party system on
one machine. MP-SPDZ's figures (``mascot-party.x``, 2 parties over loopback, one process per party)
are printed beside ours as a yardstick, not as a like-for-like comparison.

Correctness: after the timed batches every configuration opens a few triples (MAC-checked) and checks
``c = a b``; a failure makes the benchmark exit non-zero. Each row also prints the child's peak RSS
(``VmHWM``: all n parties together).

Two sections for issue #13 follow (``--sections mascot,binary,ot``, default all; ``--only`` applies):

* **binary**: the new comparisons' material through the offline service, ``offline_binary_bench.py``'s
  rows (imported: ``_row``), one fresh process each: AND triples/s, daBits/s, edaBits/s and loose
  edaBits/s (``--binary-kinds``; by default ``and_triple,dabit,edabit:32,loose:32`` at p127 and
  ``...:16`` at p61, where loose edaBits hold at most 16 bits at three parties), kB per item per party
  (MASCOT's field material included), the planner's batch and peak RSS; ``--quick`` uses its quick
  targets. Then, old against new, what ONE comparison draws on each path (``compare_bench.plan``: a
  dry run on the dealer), int32 at p127 and 16-bit at p61: the field path's triples and random bits
  (the MASCOT rows above) against the binary path's AND triples, daBit and edaBit(s);
* **ot**: SoftSpokenOT (new, MASCOT's default) against KOS (old), ``ot_bench.bench`` (imported), each
  in a fresh process: random OTs/s, bytes per OT (both ways), set-up, peak RSS, and new/old.

``--ranged W`` (with ``--sections mascot``): ranged randoms of ``W`` bits instead of triples, each row
against ``W`` field random bits made by the same parties (what a ``rounds.wide_rounding`` truncation's
low part replaces); ``--owned G``: owned triples in groups of ``G``.

    python benchmarks/offline_bench.py [--quick] [--only p127:3] [--sections binary,ot]
                                       [--binary-kinds and_triple,dabit] [--ot-log2m 20]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import trio  # noqa: E402

from protocols.intercept import PassThrough  # noqa: E402

YARDSTICK = {  # MP-SPDZ mascot-party.x, 2 parties, loopback: (triples/s, kB sent per triple per party)
    "p127": (8750.0, 19.5),
    "p61": (11400.0, 5.7),
}


class _KeyOnly:
    """A stand-in for the session's preprocessing: the offline session only needs the share context."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def compromised(self) -> None:
        pass


class _UseMascotKey(PassThrough):
    """Interceptor: give party i's session the ``MascotParty``'s share context (its MAC key)."""

    def __init__(self, party: Any) -> None:
        self.party = party

    def wrap_preprocessing(self, sid: str, pre: Any) -> Any:
        return _KeyOnly(self.party.ctx)


async def _run_mascot(
    modulus: str,
    n: int,
    batch: int,
    repeats: int,
    check: int,
    ot: str = "kos",
    owned: int = 0,
    ranged: int = 0,
) -> dict[str, Any]:
    """``owned``: instead of triples, owned triples (``protocols.mascot.owned``) in groups of that many
    products, ``batch`` products per batch, the owner rotating over the parties; rates per product.
    ``ranged``: ranged randoms of that many bits (``protocols.mascot.ranged``), then one batch of
    ``batch`` field random bits on the same parties for comparison (``bit_seconds``)."""
    import actors
    from protocols.field import get_field
    from protocols.mascot import MascotParty

    field = get_field(modulus)
    parties = [MascotParty(field, i, n, ot_extension=ot) for i in range(n)]
    hub_box: list[Any] = []

    async def prog(s: Any) -> dict[str, Any]:
        me = parties[s.party]
        hub = hub_box[0]
        t0 = time.perf_counter()
        await me.setup(s)
        setup = time.perf_counter() - t0
        b0 = hub.bytes_sent[s.party]  # only this party's own sends move its counter
        times = []
        triples = None
        if ranged:
            for _ in range(repeats):
                t = time.perf_counter()
                items = await me.ranged_randoms(s, batch, ranged)
                times.append(time.perf_counter() - t)
            sent = hub.bytes_sent[s.party] - b0
            t = time.perf_counter()
            await me.bits(s, batch)
            bit_seconds = time.perf_counter() - t
            opened = (await s.output(items[:check])).tolist()
            return {
                "setup": setup,
                "times": times,
                "setup_bytes": b0,
                "bytes": sent,
                "opened": opened,
                "bit_seconds": bit_seconds,
            }
        for rep in range(repeats):
            t = time.perf_counter()
            if owned:
                triples = await me.owned_triples(s, rep % n, batch // owned, owned)
            else:
                triples = await me.triples(s, batch)
            times.append(time.perf_counter() - t)
        sent = hub.bytes_sent[s.party] - b0
        assert triples is not None
        a, b, c = (x[:check] for x in triples)
        if owned:  # each product against its group's b
            b = triples[1][np.arange(check) // owned]
        opened = [await s.output(x) for x in (a, b, c)]
        return {"setup": setup, "times": times, "setup_bytes": b0, "bytes": sent, "opened": opened}

    async with actors.local_cluster(
        n,
        modulus=modulus,
        preprocessing="dealer",
        interceptors={i: _UseMascotKey(parties[i]) for i in range(n)},
    ) as cl:
        hub_box.append(cl.hub)
        res = await cl.run(prog)
    p = field.modulus
    # the parties run concurrently: a phase lasts as long as its slowest party
    setup = max(r["setup"] for r in res)
    times = [max(r["times"][k] for r in res) for k in range(repeats)]
    common = {"modulus": modulus, "n": n, "setup": setup, "times": times}
    if ranged:
        vals = [int(v) for v in res[0]["opened"]]
        return common | {
            "batch": batch,
            "width": ranged,
            "item_seconds": statistics.median(times) / batch,
            "bit_seconds": max(r["bit_seconds"] for r in res) / batch,
            "bytes_per_item": statistics.mean(r["bytes"] for r in res) / (batch * repeats),
            "ok": len(vals) == check and all(0 <= v < n << ranged for v in vals),
        }
    a, b, c = res[0]["opened"]
    ok = all((int(x) * int(y) - int(z)) % p == 0 for x, y, z in zip(a, b, c, strict=True)) and len(a) == check
    made = batch // owned * owned if owned else batch  # products (or triples) per batch
    return common | {
        "batch": made,
        "first": times[0],
        "warm": statistics.median(times[1:]) if repeats > 1 else None,
        "bytes_per_triple": statistics.mean(r["bytes"] for r in res) / (made * repeats),
        "setup_bytes": statistics.mean(r["setup_bytes"] for r in res),
        "ok": ok,
    }


def _one(args: argparse.Namespace) -> int:
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    if args.child_binary:  # one offline_binary_bench row
        import offline_binary_bench as obb

        from protocols.field import get_field

        family = args.child_binary.partition(":")[0]
        target = (obb.QUICK_TARGETS if args.quick else obb.TARGETS)[family]
        r = trio.run(obb._row, args.n, args.child_binary, target, get_field(args.modulus).modulus)
    elif args.child_ot:  # one ot_bench extension
        import ot_bench

        r = trio.run(ot_bench.bench, 1 << args.ot_log2m, args.repeats, args.child_ot)
    else:
        r = trio.run(
            _run_mascot, args.modulus, args.n, args.batch, args.repeats, 8, args.ot, args.owned, args.ranged
        )
    from compare_bench import hwm_mb  # the same VmHWM reading as the comparison rows

    r["rss"] = hwm_mb()
    print(json.dumps(r))
    return 0


BINARY_KINDS = {"p127": "and_triple,dabit,edabit:32,loose:32", "p61": "and_triple,dabit,edabit:16,loose:16"}


def _binary_section(configs: list[tuple[str, int]], args: argparse.Namespace) -> bool:
    """The new comparisons' material through the offline service (``offline_binary_bench``'s rows, a
    fresh process each), then one comparison's material on either path. False if a check failed."""
    print()
    print("binary material through the offline service (MASCOT for its field part, memory transport,")
    print(
        f"default [memory] bounds; offline_binary_bench.py's rows{', quick targets' if args.quick else ''});"
    )
    print("fresh process per row; items/s: the service's own rate over its batches, wall/s: until every pool")
    print("held the target")
    print(
        f"{'field':<6}{'n':>3} {'kind':>11}{'made':>9}{'items/s':>11}{'wall/s':>10}{'batch':>8}"
        f"{'kB/item':>9}{'set-up s':>10}{'RSS MB':>8}  check"
    )
    ok = True
    for mod, n in configs:
        for kind in (args.binary_kinds or BINARY_KINDS[mod]).split(","):
            argv = ["--one", "--child-binary", kind, "--modulus", mod, "--n", str(n)]
            r = _subprocess(argv + (["--quick"] if args.quick else []))
            print(
                f"{mod:<6}{n:>3} {kind:>11}{r['made']:>9}{r['rate']:>11,.0f}{r['wall_rate']:>10,.0f}"
                f"{r['batch']:>8}{r['kb_item']:>9.2f}{r['setup']:>10.2f}{r['rss']:>8.0f}  "
                f"{'ok' if r['ok'] else 'FAIL'}",
                flush=True,
            )
            ok &= r["ok"]
    import compare_bench

    print("one comparison x < y draws, old (field path) against new (binary path), besides its inputs:")
    for mod, n in configs:
        bits = compare_bench.DEFAULT_BITS[mod]
        for path, label in (("field", "old"), ("binary", "new")):
            need = compare_bench.plan(n, 64, path, mod, bits)
            items = ", ".join(
                f"{v / 64:g} {k}" for k, v in need.items() if not k.startswith(("mask", "random"))
            )
            print(f"  {mod} int{bits} (n = {n}) {label}: {items}")
    return ok


def _ot_section(args: argparse.Namespace) -> None:
    """SoftSpokenOT (new) against KOS (old): ``ot_bench.bench`` in a fresh process each."""
    log2m = args.ot_log2m or (18 if args.quick else 20)
    repeats = 2 if args.quick else 4
    print()
    print(
        f"OT extensions, m = 2^{log2m} random OTs per extend, mean of {repeats} (ot_bench.py), both parties"
    )
    print("in one process (memory transport); fresh process per row")
    print(f"{'extension':<22}{'OTs/s':>12}{'bytes/OT':>10}{'set-up ms':>11}{'set-up kB':>11}{'RSS MB':>8}")
    rows = {}
    for ext, label in (("kos", "KOS"), ("softspoken", "SoftSpoken")):
        r = _subprocess(["--one", "--child-ot", ext, "--ot-log2m", str(log2m), "--repeats", str(repeats)])
        rows[ext] = r
        label += f" k={r['k']} (new)" if r["k"] else " (old)"
        print(
            f"{label:<22}{r['m'] / r['wall']:>12,.0f}{r['r2s'] + r['s2r']:>10.3f}"
            f"{r['setup'] * 1e3:>11.1f}{r['setup_bytes'] / 1e3:>11.1f}{r['rss']:>8.0f}",
            flush=True,
        )
    old, new = rows["kos"], rows["softspoken"]
    print(
        f"{'new/old':<22}{old['wall'] / new['wall']:>11.2f}x"
        f"{(new['r2s'] + new['s2r']) / (old['r2s'] + old['s2r']):>9.2f}x{new['setup'] / old['setup']:>10.2f}x"
        f"{new['setup_bytes'] / old['setup_bytes']:>10.2f}x{new['rss'] / old['rss']:>7.2f}x"
    )
    print("bytes/OT: both ways (receiver -> sender + sender -> receiver), payload as the memory hub counts")


def _subprocess(argv: list[str]) -> dict[str, Any]:
    out = subprocess.run(  # noqa: S603 (our own script, with our own arguments)
        [sys.executable, str(Path(__file__).resolve()), *argv], capture_output=True, text=True, check=False
    )
    if out.returncode:
        raise RuntimeError(f"benchmark child {argv} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _mascot_section(configs: list[tuple[str, int]], args: argparse.Namespace) -> bool:
    """MASCOT's field triples on each OT extension, a fresh process per row. False if a check failed."""
    print("MASCOT triples, all parties in one process (memory transport); fresh process per row")
    print(
        f"{'field':<6}{'n':>3}{'ot':>11}{'batch':>7}{'setup s':>9}{'first s':>9}{'cold/s':>9}{'first/s':>9}"
        f"{'warm/s':>9}{'kB/tri':>8}{'setup kB':>10}{'RSS MB':>8}  check   MP-SPDZ n=2"
    )
    ok = True
    extensions = [e.strip() for e in args.ot.split(",") if e.strip()]
    if args.ranged:
        return _ranged_rows(configs, extensions, args)
    for mod, n in configs:
        for ext in extensions:
            batch = args.batch or (1000 if args.quick else (8000 if n == 2 else 4000))
            r = _subprocess(
                ["--one", "--modulus", mod, "--n", str(n), "--batch", str(batch)]
                + ["--repeats", str(args.repeats), "--ot", ext, "--owned", str(args.owned)]
            )
            cold = batch / (r["setup"] + r["first"])
            warm = f"{batch / r['warm']:9.0f}" if r["warm"] else f"{'-':>9}"
            ys = YARDSTICK[mod]
            print(
                f"{mod:<6}{n:>3}{ext:>11}{batch:>7}{r['setup']:9.3f}{r['first']:9.3f}{cold:9.0f}"
                f"{batch / r['first']:9.0f}{warm}{r['bytes_per_triple'] / 1e3:8.2f}"
                f"{r['setup_bytes'] / 1e3:10.1f}{r['rss']:8.0f}  "
                f"{'ok  ' if r['ok'] else 'FAIL'}    {ys[0]:,.0f}/s, {ys[1]} kB",
                flush=True,
            )
            ok &= r["ok"]
    return ok


def _ranged_rows(configs: list[tuple[str, int]], extensions: list[str], args: argparse.Namespace) -> bool:
    """``--ranged W``: ranged randoms of ``W`` bits against ``W`` field random bits (what a wide-rounding
    truncation's low part replaces), per item, on the same parties."""
    w = args.ranged
    print(f"\nranged randoms of {w} bits (protocols.mascot.ranged) against {w} field random bits")
    print(
        f"{'field':<6}{'n':>3}{'ot':>11}{'batch':>7}{'ms/item':>9}{'kB/item':>9}"
        f"{'ms/W bits':>11}{'ratio':>7}  check"
    )
    ok = True
    for mod, n in configs:
        for ext in extensions:
            batch = args.batch or (500 if args.quick else 4000)
            r = _subprocess(
                ["--one", "--modulus", mod, "--n", str(n), "--batch", str(batch)]
                + ["--repeats", str(args.repeats), "--ot", ext, "--ranged", str(w)]
            )
            item, bits = r["item_seconds"] * 1e3, r["bit_seconds"] * w * 1e3
            print(
                f"{mod:<6}{n:>3}{ext:>11}{batch:>7}{item:9.3f}{r['bytes_per_item'] / 1e3:9.1f}{bits:11.3f}"
                f"{bits / item:7.1f}  {'ok' if r['ok'] else 'FAIL'}",
                flush=True,
            )
            ok &= r["ok"]
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--batch", type=int, default=0, help="triples per batch (default: 8000 at n=2, 4000 at n=3)"
    )
    ap.add_argument("--repeats", type=int, default=3, help="batches per configuration (default 3)")
    ap.add_argument("--quick", action="store_true", help="small batches, for a smoke test")
    ap.add_argument("--only", default="", help="e.g. p127:2 to run one configuration")
    ap.add_argument(
        "--ot", default="kos,softspoken", help="OT extensions to run MASCOT on, comma-separated (both)"
    )
    ap.add_argument("--sections", default="mascot,binary,ot", help="mascot, binary, ot (default all)")
    ap.add_argument("--binary-kinds", default="", help="binary kinds (default: by field, see above)")
    ap.add_argument("--ot-log2m", type=int, default=0, help="OTs per extend: 2^N (default 20, quick 18)")
    ap.add_argument(
        "--owned", type=int, default=0, help="owned triples in groups of N products instead of triples"
    )
    ap.add_argument(
        "--ranged", type=int, default=0, help="ranged randoms of N bits (against N field random bits)"
    )
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # child mode
    ap.add_argument("--child-binary", default="", help=argparse.SUPPRESS)
    ap.add_argument("--child-ot", default="", help=argparse.SUPPRESS)
    ap.add_argument("--modulus", default="p127", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "benchmarks"))  # offline_binary_bench, ot_bench, compare_bench
    if args.one:
        return _one(args)
    sections = {x.strip() for x in args.sections.split(",") if x.strip()}
    configs = [(m, n) for m in ("p61", "p127") for n in (2, 3)]
    if args.only:
        mod, _, nn = args.only.partition(":")
        configs = [(m, n) for m, n in configs if m == mod and (not nn or n == int(nn))]
    failed = False
    if "mascot" in sections:
        failed |= not _mascot_section(configs, args)
    if "binary" in sections:
        failed |= not _binary_section(configs, args)
    if "ot" in sections:
        _ot_section(args)
    if failed:
        print("CORRECTNESS CHECK FAILED: some opened triple or binary item was wrong")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
