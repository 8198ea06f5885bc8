"""The ``spdz`` command line."""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

from . import logs


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import main as demo_main

    return demo_main(args.field)


def _cmd_bench(args: argparse.Namespace) -> int:
    root = Path(__file__).resolve().parent.parent / "benchmarks"
    names = {"field": "field_bench.py", "online": "online_bench.py"}
    chosen = list(names) if args.which == "all" else [args.which]
    for name in chosen:
        path = root / names[name]
        if not path.exists():
            print(f"spdz bench: {path} not found (run from a source checkout)", file=sys.stderr)
            return 2
        print(f"== {name} ({path.name})")
        mod = runpy.run_path(str(path), run_name="spdz_bench")
        mod["main"](args.extra)
        print()
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="spdz",
        description="trio-spdz: maliciously secure multi-party computation (SPDZ) on Trio.",
    )
    ap.add_argument("--log-level", default="error", help="debug, info, warning, error (default: error)")
    ap.add_argument("--log-format", default="console", choices=["console", "json"])
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    d = sub.add_parser("demo", help="three hospitals compute joint statistics, checked against plaintext")
    d.add_argument("--field", default="p127", choices=["p61", "p127"], help="prime field (default p127)")
    d.set_defaults(func=_cmd_demo)
    b = sub.add_parser("bench", help="print field and online-phase benchmark tables")
    b.add_argument("which", nargs="?", default="all", choices=["all", "field", "online"])
    b.add_argument("extra", nargs=argparse.REMAINDER, help="arguments passed to the benchmark")
    b.set_defaults(func=_cmd_bench)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(args.log_level, args.log_format)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
