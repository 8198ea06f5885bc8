"""Online secure comparisons, field path vs binary path (edaBits, AND triples, daBits).

``N`` int32 comparisons ``x < y`` (``SecretInt``, 33-bit differences; x from party 0, y from party 1,
fixed public seed) among ``n`` parties in one process on the memory transport, on the INSECURE dealer's
material, which is drawn *before* the clock starts: a dry run of the same comparison records every
preprocessing request, the same requests are drawn again, and the timed run is served from them (the
dealer's cost is not the online phase's; what each path consumes is printed). Per path
(``Session(comparison="field" | "binary")``):

* **cmp/s**: ``N`` / the wall time of the comparison alone (the first party's start to the last
  party's end), and **+output/s** including the checked output of the result bits (the field MAC
  check, and on the binary path the binary one too);
* **rounds** of the comparison (``s.stats["rounds"]``) and of the output;
* **kB/cmp**: payload bytes one party sent in the timed part, per comparison (mean over parties);
* **CPU s**: this process's CPU seconds (all parties share it) over the comparison and the output;
* the material per comparison.

    python benchmarks/compare_online_bench.py [--size 10000] [--parties 3] [--repeat 3] [--modulus p127]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import structlog  # noqa: E402
import trio  # noqa: E402

import actors  # noqa: E402
from protocols.intercept import Forwarding, PassThrough  # noqa: E402
from protocols.sectypes import SecretInt  # noqa: E402

KINDS = ("triples", "squares", "bits", "randoms", "input_masks", "and_triples", "dabits", "edabits")


class Prefetch(Forwarding):
    """Records the requests of a dry run (``recording``), draws the same ones again (``stock``) and
    serves them, in order, to the timed run."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.recording = False
        self.log: list[tuple[str, tuple[Any, ...]]] = []
        self.queue: deque[tuple[str, tuple[Any, ...], Any]] = deque()

    async def _get(self, name: str, *args: Any) -> Any:
        if self.queue:
            got, got_args, value = self.queue.popleft()
            if (got, got_args) != (name, args):
                raise RuntimeError(f"timed run asked for {name}{args}, the dry run for {got}{got_args}")
            return value
        if self.recording:
            self.log.append((name, args))
        return await getattr(self.inner, name)(*args)

    async def stock(self) -> None:
        for name, args in self.log:
            self.queue.append((name, args, await getattr(self.inner, name)(*args)))

    def per_element(self, size: int) -> dict[str, float]:
        out: Counter[str] = Counter()
        for name, args in self.log:
            if name == "edabits":
                out["edaBit bits"] += args[0] * args[1]
            elif name != "input_masks":
                out[name] += args[0]
        return {k: v / size for k, v in out.items()}

    async def triples(self, n: int) -> Any:
        return await self._get("triples", n)

    async def squares(self, n: int) -> Any:
        return await self._get("squares", n)

    async def bits(self, n: int) -> Any:
        return await self._get("bits", n)

    async def randoms(self, n: int) -> Any:
        return await self._get("randoms", n)

    async def input_masks(self, owner: int, n: int) -> Any:
        return await self._get("input_masks", owner, n)

    async def and_triples(self, n: int) -> Any:
        return await self._get("and_triples", n)

    async def dabits(self, n: int) -> Any:
        return await self._get("dabits", n)

    async def edabits(self, n: int, k: int) -> Any:
        return await self._get("edabits", n, k)


class PrefetchAll(PassThrough):
    def wrap_preprocessing(self, session: str, pre: Any) -> Any:
        return Prefetch(pre)


async def cmp_prog(s: Any, size: int, hub: Any) -> dict[str, Any]:
    rng = np.random.default_rng(2024)  # public benchmark data, not a secret
    xs = rng.integers(-(2**31), 2**31, size=size, dtype=np.int64)
    ys = rng.integers(-(2**31), 2**31, size=size, dtype=np.int64)
    x = await SecretInt.input(s, xs if s.party == 0 else None, owner=0, k=32)
    y = await SecretInt.input(s, ys if s.party == 1 else None, owner=1, k=32)
    pre = s.pre
    pre.recording = True
    await (await (x < y)).reveal()  # the dry run: what one comparison and its output draw
    pre.recording = False
    await pre.stock()
    await s.mac_check()  # a synchronizing round: nobody's clock starts while another still stocks
    b0, r0 = hub.bytes_sent[s.party], s.stats["rounds"]
    t0, c0 = time.perf_counter(), time.process_time()
    lt = await (x < y)
    t1, c1, r1 = time.perf_counter(), time.process_time(), s.stats["rounds"]
    out = await lt.reveal()
    t2, c2 = time.perf_counter(), time.process_time()
    return {
        "t": (t0, t1, t2),
        "cpu": (c0, c1, c2),
        "rounds": (r1 - r0, s.stats["rounds"] - r1),
        "bytes": hub.bytes_sent[s.party] - b0,
        "ok": bool(np.array_equal(out, (xs < ys).astype(int))),
        "material": pre.per_element(size),
        "domain": s.comparison_domain,
    }


async def bench(modulus: str, n: int, size: int, repeat: int, domain: str) -> dict[str, Any]:
    runs = []
    async with actors.local_cluster(
        n,
        modulus=modulus,
        preprocessing="dealer",
        interceptors=dict.fromkeys(range(n), PrefetchAll()),
        session_options={"comparison": domain, "check_bound": 1 << 40},
    ) as c:
        for _ in range(repeat):
            res = await c.run(cmp_prog, size, c.hub)
            if not all(r["ok"] for r in res) or {r["domain"] for r in res} != {domain}:
                raise SystemExit(f"the {domain} path gave a wrong comparison")
            runs.append(res)
    cmp_rates = [size / (max(r["t"][1] for r in res) - min(r["t"][0] for r in res)) for res in runs]
    out_rates = [size / (max(r["t"][2] for r in res) - min(r["t"][0] for r in res)) for res in runs]
    cpu = [max(r["cpu"][1] for r in res) - min(r["cpu"][0] for r in res) for res in runs]
    cpu_out = [max(r["cpu"][2] for r in res) - min(r["cpu"][0] for r in res) for res in runs]
    first = runs[0][0]
    return {
        "cmp/s": statistics.median(cmp_rates),
        "+output/s": statistics.median(out_rates),
        "rounds": first["rounds"],
        "kB/cmp": statistics.mean(r["bytes"] for r in runs[-1]) / size / 1e3,
        "cpu": (statistics.median(cpu), statistics.median(cpu_out)),
        "material": first["material"],
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=10_000)
    ap.add_argument("--parties", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--modulus", default="p127")
    ap.add_argument("--domains", default="field,binary")
    args = ap.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    print(
        f"{args.size} int32 comparisons x < y, n = {args.parties}, {args.modulus}, one process, memory "
        f"transport, dealer material drawn before timing, median of {args.repeat}"
    )
    head = f"{'path':7} {'cmp/s':>9} {'+output/s':>10} {'rounds':>11} {'kB/cmp':>7} {'CPU s':>11}"
    print(head + "  material/cmp")
    for domain in args.domains.split(","):
        r = trio.run(bench, args.modulus, args.parties, args.size, args.repeat, domain)
        mat = ", ".join(f"{v:g} {k}" for k, v in sorted(r["material"].items()))
        rounds = f"{r['rounds'][0]} + {r['rounds'][1]}"
        print(
            f"{domain:7} {r['cmp/s']:>9,.0f} {r['+output/s']:>10,.0f} {rounds:>11} "
            f"{r['kB/cmp']:>7.2f} {r['cpu'][0]:>4.2f} + {r['cpu'][1] - r['cpu'][0]:>4.2f}  {mat}"
        )


if __name__ == "__main__":
    main()
