"""The ``spdz`` command line."""

from __future__ import annotations

import argparse
import runpy
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import NoReturn

from . import logs

COMMANDS = "spdz.commands"  # entry-point group of subcommands other packages add
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DEMO_SIZES
    from .demo import main as demo_main

    try:
        sizes = tuple(int(v) for v in args.sizes.split(",")) if args.sizes else DEMO_SIZES
    except ValueError:
        sizes = ()
    if len(sizes) != 3 or min(sizes) < 2 or max(sizes) > 10_000_000:
        print(
            "spdz demo: --sizes takes three transaction counts from 2 to 10,000,000, e.g. 1000,800,1200",
            file=sys.stderr,
        )
        return 2
    return demo_main(args.transport, sizes)


def _cmd_bench(args: argparse.Namespace) -> int:
    root = Path(__file__).resolve().parent.parent / "benchmarks"
    names = {
        "field": "field_bench.py",
        "online": "online_bench.py",
        "ot": "ot_bench.py",
        "offline": "offline_bench.py",
        "local": "local_bench.py",
    }
    chosen = list(names) if args.which == "all" else [args.which]
    for name in chosen:
        path = root / names[name]
        if not path.exists():
            print(
                f"spdz bench: the benchmarks ship with the source, not the installed package; in a "
                f"checkout of trio-spdz run: python benchmarks/{names[name]}",
                file=sys.stderr,
            )
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


def _cmd_party(args: argparse.Namespace) -> int:
    """``spdz party``: load the config, set up logging, run the daemon; exit 0 after a graceful stop.

    Exit status 2 for a configuration problem (systemd should not restart into it), 1 for any other
    failure to start or run.
    """
    import time

    import trio

    from protocols.concurrency import leaves
    from protocols.errors import ConfigError

    from .config import load_config
    from .control import MAX_UPLOAD_VALUES
    from .daemon import DaemonOptions, PartyDaemon, log

    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        print(f"spdz party: {e}", file=sys.stderr)
        return 2
    logs.configure(cfg.log_level, cfg.log_format)
    if not (args.grace >= 0 and args.submit_timeout > 0):
        print("spdz party: --grace must be >= 0 and --submit-timeout > 0 seconds", file=sys.stderr)
        return 2
    max_values = getattr(args, "max_input_values", None)
    max_values = MAX_UPLOAD_VALUES if max_values is None else max_values
    if not 1 <= max_values <= 1 << 40:
        print("spdz party: --max-input-values must be a positive number of values", file=sys.stderr)
        return 2
    options = DaemonOptions(grace=args.grace, submit_timeout=args.submit_timeout, max_input_values=max_values)
    t0 = time.monotonic()
    try:
        daemon = PartyDaemon(cfg, options=options)
        return trio.run(daemon.run)
    except KeyboardInterrupt:  # before the signal receiver was installed
        return 130
    except BaseException as e:
        errors = leaves(e)
        for leaf in errors:
            if isinstance(leaf, (ConfigError, OSError)):
                print(f"spdz party: {leaf}", file=sys.stderr)
            else:
                print(f"spdz party: failed: {type(leaf).__name__}: {leaf}", file=sys.stderr)
        log.error("daemon_failed", seconds=round(time.monotonic() - t0, 3), error=str(errors[0])[:300])
        if all(isinstance(leaf, ConfigError) for leaf in errors):
            return 2
        if any(isinstance(leaf, KeyboardInterrupt) for leaf in errors):
            return 130
        return 1


def _cmd_submit(args: argparse.Namespace) -> int:
    from .control import cmd_submit

    return cmd_submit(args)


def _cmd_status(args: argparse.Namespace) -> int:
    from .control import cmd_status

    return cmd_status(args)


def _cmd_budget(args: argparse.Namespace) -> int:
    import json

    from protocols.errors import ConfigError

    from .budget import BudgetLedger
    from .config import load_config

    try:
        cfg = load_config(args.config, check_files=False)
    except ConfigError as e:
        print(f"spdz budget: {e}", file=sys.stderr)
        return 2
    if not cfg.budgets:
        print(f"{cfg.source}: no [budget.datasets] in this config", file=sys.stderr)
        return 1
    with BudgetLedger(cfg.ledger_path, cfg.budgets) as led:
        status = led.status()
    if args.json:
        print(json.dumps({"ledger": str(cfg.ledger_path), "datasets": status}, indent=2))
        return 0
    print(f"privacy budgets of party {cfg.party} (ledger {cfg.ledger_path})")
    print(f"{'dataset':<24} {'epsilon':>9} {'delta':>9} {'spent':>9} {'remaining':>9} {'charges':>8}")
    for name, st in status.items():
        print(
            f"{name:<24} {st['epsilon']:>9.4g} {st['delta']:>9.2g} {st['spent']:>9.4g} "
            f"{st['remaining']:>9.4g} {int(st['charges']):>8}"
        )
    return 0


class _Parser(argparse.ArgumentParser):
    """A usage mistake is one line on stderr and exit status 2 (argparse would add the usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(
        prog="spdz",
        description="trio-spdz: maliciously secure multi-party computation (SPDZ) on Trio.",
    )
    ap.add_argument(
        "--log-level",
        default="error",
        type=str.lower,
        choices=LOG_LEVELS,
        help="debug, info, warning, error (default: error)",
    )
    ap.add_argument("--log-format", default="console", choices=["console", "json"])
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    d = sub.add_parser("demo", help="three banks compute joint fraud statistics, checked against plaintext")
    d.add_argument(
        "--sizes", default="", help="transactions per bank, e.g. 1000000,800000,1200000 (default 100000 each)"
    )
    d.add_argument(
        "--transport",
        default="tls",
        choices=["tls", "memory"],
        help="tls (default: one process per bank, TLS 1.3 on loopback) or memory (all in this process)",
    )
    d.set_defaults(func=_cmd_demo)
    b = sub.add_parser("bench", help="print field and online-phase benchmark tables")
    b.add_argument(
        "which", nargs="?", default="all", choices=["all", "field", "online", "ot", "offline", "local"]
    )
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
    pa = sub.add_parser(
        "party", help="run this party's daemon (systemd Type=notify; SIGTERM: graceful stop; SIGHUP: reload)"
    )
    pa.add_argument(
        "--config", required=True, help="the party's TOML file (spdz keygen: party<i>/party.toml)"
    )
    pa.add_argument(
        "--grace", type=float, default=20.0, help="seconds running sessions get to finish on SIGTERM (20)"
    )
    pa.add_argument(
        "--submit-timeout",
        type=float,
        default=60.0,
        help="default seconds a submit waits for preprocessing and for the other parties to join (60)",
    )
    pa.add_argument(
        "--max-input-values",
        type=int,
        metavar="N",
        help="largest input one submit may upload, in values (rows x columns; default 2^26 = 67108864, "
        "512 MiB as float64)",
    )
    pa.set_defaults(func=_cmd_party)
    sb = sub.add_parser(
        "submit",
        help="give this party's input to its daemon, wait for the session, print the result",
        description="Every party submits the same --program and --session with its own --input. "
        "Each party's number of values is public to the others; the values are not. "
        "The input file is one number per line, or CSV with a header row naming the columns (a file "
        "whose first line has a comma, or any file given with --column). sum, mean and bench_mul take "
        "integers, one column; the stats_*, linreg_* and logreg_* programs take decimals (|x| <= 2^40), "
        "one column or several (a table: one row per line). Blank lines are skipped; NaN and infinities "
        "are refused. The file is read in blocks (millions of rows are fine) and any bad value is "
        "reported with its line and column; it never leaves this machine (the other parties are told "
        "only that this party rejected its input).",
    )
    sb.add_argument("--config", required=True, help="the party's TOML file (for its control socket)")
    sb.add_argument(
        "--program", required=True, help="registered program: sum, mean, stats_mean, linreg_train, ..."
    )
    sb.add_argument(
        "--input",
        required=True,
        help="one number per line, or CSV with a header row: integers for sum/mean/bench_mul, "
        "decimals for stats_*/linreg_*/logreg_*",
    )
    sb.add_argument("--session", help="session id, the same at every party (default: automatic)")
    sb.add_argument(
        "--column",
        metavar="NAME[,NAME...]",
        help="read these columns of a CSV file with a header row (a name, or names separated by "
        "commas; default: every column; one column only for the integer programs)",
    )
    sb.add_argument(
        "--timeout", type=float, help="seconds to wait for the other parties to join (daemon's default)"
    )
    sb.add_argument("--json", action="store_true", help="print the full result as JSON")
    dp = sb.add_argument_group(
        "differential privacy",
        "a noisy output, charged to this party's budget for DATASET before anything is opened; every "
        "party must give the same values (they are part of what the parties agree to run)",
    )
    dp.add_argument("--dp", metavar="DATASET", help="the dataset whose privacy budget pays for the output")
    dp.add_argument("--epsilon", type=float, help="the program's total epsilon")
    dp.add_argument("--delta", type=float, help="the program's total delta (e.g. 1e-9)")
    dp.add_argument("--mechanism", choices=["gaussian", "binomial"], help="the noise (default gaussian)")
    dp.add_argument("--bounds", metavar="LO:HI", help="public clipping bounds for sums and means")
    sb.set_defaults(func=_cmd_submit)
    st = sub.add_parser("status", help="show a running daemon's links, pools, sessions and aborts")
    st.add_argument("--config", required=True, help="the party's TOML file (for its control socket)")
    st.add_argument("--json", action="store_true", help="print the status as JSON")
    st.set_defaults(func=_cmd_status)
    bu = sub.add_parser("budget", help="show this party's privacy budgets: spent and remaining per dataset")
    bu.add_argument("--config", required=True, help="the party's TOML file (its [budget] section)")
    bu.add_argument("--json", action="store_true", help="print the budgets as JSON")
    bu.set_defaults(func=_cmd_budget)
    for ep in entry_points(group=COMMANDS):  # subcommands other packages add (netsim: simulate)
        try:
            ep.load()(sub)
        except Exception as e:  # a broken plug-in must not take the other commands down
            print(
                f"spdz: ignoring the {ep.name!r} command ({ep.value}): {type(e).__name__}: {e}",
                file=sys.stderr,
            )
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(args.log_level, args.log_format)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
