"""The ``spdz`` command line: a usage mistake is one line on stderr naming it, and exit status 2,
never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from actors import cli

MISTAKES = {
    "log level": (["--log-level", "loud", "status", "--config", "x"], "invalid choice: 'loud'"),
    "no command": ([], "the following arguments are required: COMMAND"),
    "unknown command": (["nosuch"], "invalid choice: 'nosuch'"),
    "missing value": (["status", "--config"], "expected one argument"),
    "demo sizes": (["demo", "--sizes", "a,b,c"], "--sizes takes three transaction counts"),
    "bench": (["bench", "nosuch"], "invalid choice: 'nosuch'"),
    "simulate runs": (["simulate", "--runs", "x"], "invalid int value: 'x'"),
    "fault spec": (["simulate", "--faults", "bogus=1"], "unknown key 'bogus'"),
    "adversary": (["simulate", "--adversary", "nobody"], "unknown adversary 'nobody'"),
    "config file": (["status", "--config", "/nonexistent/party.toml"], "config file does not exist"),
}


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_a_usage_mistake_is_one_line_and_exit_2(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv, expected = MISTAKES[name]
    try:
        rc = cli.main(argv)
    except SystemExit as e:  # argparse's own mistakes leave through exit(2)
        rc = e.code  # type: ignore[assignment]
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert rc == 2 and out == "", (rc, out, err)
    assert len(lines) == 1 and expected in lines[0] and lines[0].startswith("spdz"), err


def test_no_traceback_from_the_installed_command(tmp_path: Path) -> None:
    """The same through the console script, as a user runs it."""
    script = Path(sys.executable).parent / "spdz"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "actors.cli"]
    proc = subprocess.run([*cmd, "--log-level", "LOUD", "status"], capture_output=True, text=True)  # noqa: S603
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_bench_outside_a_source_checkout_says_what_to_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "__file__", str(tmp_path / "site-packages" / "actors" / "cli.py"))
    assert cli.main(["bench", "field"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "python benchmarks/field_bench.py" in err[0], err


def test_simulate_help_says_why_its_default_field_differs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["simulate", "--help"])
    assert "unlike the daemons' p127" in " ".join(capsys.readouterr().out.split())
