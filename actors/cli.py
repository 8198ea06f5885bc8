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
    names = {
        "field": "field_bench.py",
        "online": "online_bench.py",
        "ot": "ot_bench.py",
        "offline": "offline_bench.py",
    }
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


def _cmd_keygen(args: argparse.Namespace) -> int:
    """Write the cluster CA, party certificates/keys and configs; print the paths, never key material."""
    from protocols.errors import ConfigError

    from .pki import make_cluster

    hosts = [h.strip() for h in args.hosts.split(",")] if args.hosts else None
    try:
        written = make_cluster(
            Path(args.out), args.parties, hosts, args.base_port, args.days, force=args.force
        )
    except ConfigError as e:
        print(f"spdz keygen: {e}", file=sys.stderr)
        return 2
    print(f"spdz keygen: wrote {len(written)} files for {args.parties} parties:")
    for path in written:
        print(f"  {path}")
    print("Copy each party<i>/ directory to party i's machine only.")
    print(f"Move the CA private key {Path(args.out) / 'ca-key.pem'} offline (or delete it) now.")
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
    b.add_argument("which", nargs="?", default="all", choices=["all", "field", "online", "ot", "offline"])
    b.add_argument("extra", nargs=argparse.REMAINDER, help="arguments passed to the benchmark")
    b.set_defaults(func=_cmd_bench)
    k = sub.add_parser("keygen", help="create a cluster CA, party certificates/keys and party configs")
    k.add_argument("--parties", type=int, required=True, help="number of parties (at least 2)")
    k.add_argument("--out", required=True, help="output directory")
    k.add_argument("--hosts", help="comma-separated host of each party, in id order (default 127.0.0.1)")
    k.add_argument("--base-port", type=int, default=7700, help="port of party i: BASE_PORT+i (default 7700)")
    k.add_argument("--days", type=int, default=825, help="party certificate validity in days (default 825)")
    k.add_argument("--force", action="store_true", help="overwrite existing keys and certificates in --out")
    k.set_defaults(func=_cmd_keygen)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(args.log_level, args.log_format)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
