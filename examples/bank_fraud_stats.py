"""Three banks pool their fraud statistics without pooling their transactions.

The data, the program and the plaintext reference are in ``protocols/apps/fraud.py`` (``spdz demo``
runs the same program over TLS): each bank holds its own card transactions (synthetic, from a fixed
seed: amount, hour of day, abroad or not, confirmed fraud or not); together they compute the joint
fraud rate, the mean amounts of fraudulent and legitimate transactions, the fraud rates abroad and
at home, the correlations between amount, use abroad and fraud, and a histogram of the amounts
and reveal only those. Each bank summarises its own transactions locally (counts, means, centred
second moments, bin counts) and only the summaries are combined in MPC, so the cost does not grow
with the number of transactions and no bank learns another's transaction count. Every number is
printed beside the plaintext one computed on the union, which no bank could compute. MASCOT
preprocessing by default, ``--dealer`` for the INSECURE test dealer; ``--rows`` runs the row-level
program instead (every transaction secret-shared: minutes at a few hundred rows, for comparison).

    python examples/bank_fraud_stats.py [--dealer] [--sizes 100000,100000,100000] [--tls] [--rows]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import trio  # noqa: E402

from protocols.apps.fraud import (  # noqa: E402
    BANKS,
    bank_data,
    bank_program,
    bank_program_rows,
    plaintext,
    report,
    same,
)

SIZES = (100_000, 100_000, 100_000)


async def run_banks(
    banks: list[np.ndarray], preprocessing: str = "mascot", transport: str = "memory", program: Any = None
) -> tuple[dict[str, Any], float, float]:
    """All three banks in this process; returns bank 0's results, the seconds end to end (set-up
    included) and the megabytes exchanged."""
    import actors
    from actors.offline import Watermarks
    from actors.plan import preprocessing_plan

    program = program or bank_program
    # pools sized to what the program consumes (a dry run on the insecure dealer counts it)
    need = await preprocessing_plan(program, 3, banks)
    marks = Watermarks.for_plan(need)
    t0 = time.perf_counter()
    async with actors.local_cluster(
        3, transport=transport, preprocessing=preprocessing, watermarks=marks
    ) as c:
        print(f"  [{time.perf_counter() - t0:5.1f} s] parties up; preprocessing", flush=True)
        await c.stock(need)  # exactly the planned material, then no refills during the program
        print(f"  [{time.perf_counter() - t0:5.1f} s] preprocessing ready; computing", flush=True)
        results = await c.run(program, banks)
        links = [int(getattr(p.links, "bytes_sent", 0)) for p in c.parties]
        sent = sum(c.hub.bytes_sent) if c.hub is not None else sum(links)
    if any(not same(r, results[0]) for r in results):
        raise RuntimeError("the banks disagree on the results: this is a bug")
    return results[0], time.perf_counter() - t0, sent / 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dealer", action="store_true", help="INSECURE trusted-dealer preprocessing")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="transactions per bank")
    ap.add_argument("--tls", action="store_true", help="TLS 1.3 on loopback instead of memory links")
    ap.add_argument("--rows", action="store_true", help="the row-level program (slow: for comparison)")
    args = ap.parse_args(argv)
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    try:
        sizes = tuple(int(v) for v in args.sizes.split(","))
    except ValueError:
        ap.error(f"--sizes takes three counts, e.g. 100000,100000,100000 (got {args.sizes!r})")
    if len(sizes) != 3 or min(sizes) < 2 or max(sizes) > 10_000_000:
        ap.error("--sizes takes three counts from 2 to 10,000,000")
    banks = bank_data(sizes)
    print("Three banks compute joint fraud statistics; each keeps its transactions to itself.")
    for name, rows in zip(BANKS, banks, strict=True):
        print(f"  {name:16} {len(rows):>11,} transactions (private)")
    preprocessing = "dealer" if args.dealer else "mascot"
    program = bank_program_rows if args.rows else bank_program
    got, seconds, mb = trio.run(run_banks, banks, preprocessing, "tls" if args.tls else "memory", program)
    want = plaintext(banks)
    print()
    lines, ok = report(got, want)
    print("\n".join(lines))
    print()
    where = "dealer (INSECURE, for testing)" if args.dealer else "MASCOT"
    print(f"  end to end {seconds:.1f} s, {mb:,.1f} MB exchanged")
    print(f"  (3 parties, one process, {where} preprocessing)")
    print("  result:", "every statistic matches the plaintext computation" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
