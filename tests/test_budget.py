"""The privacy budget ledger (``actors.budget``): refusal at the limit with the dataset named, nothing
written for a refused charge, totals that are the accountant's, persistence across reopening, a
charge that survives a process killed right after it, and concurrent processes that cannot overspend."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sqlite3
from fractions import Fraction
from pathlib import Path

import pytest

from actors.budget import Budget, BudgetLedger
from protocols.dp.accounting import Accountant, Binomial, DiscreteGaussian, calibrate_sigma2
from protocols.errors import AbortError, BudgetExceeded

DELTA = 1e-9
BUDGETS = {"patients": Budget(1.0, DELTA), "claims": Budget(3.0, DELTA)}


def half() -> DiscreteGaussian:
    """A discrete Gaussian of epsilon 0.8 at DELTA: two of them compose to about 1.13 (Gaussians
    compose like sqrt(k), not k), which does not fit a budget of 1."""
    return DiscreteGaussian(calibrate_sigma2(0.8, DELTA))


def test_refusal_at_the_limit_names_the_dataset_and_writes_nothing(tmp_path: Path) -> None:
    with BudgetLedger(tmp_path / "ledger.db", BUDGETS) as led:
        first = led.charge("patients", "s-1", [half()])
        assert first <= 0.8
        with pytest.raises(BudgetExceeded, match="'patients'") as info:
            led.charge("patients", "s-2", [half()])
        assert isinstance(info.value, AbortError) and info.value.dataset == "patients"
        st = led.status()["patients"]
        assert st["charges"] == 1 and st["spent"] == pytest.approx(first)
        assert st["remaining"] == pytest.approx(1.0 - first)
        led.charge("claims", "s-3", [half(), half()])  # another dataset has its own budget
        with pytest.raises(BudgetExceeded, match="no budget of that name"):
            led.charge("unknown", "s-4", [half()])


def test_totals_are_the_accountants(tmp_path: Path) -> None:
    mechs = [DiscreteGaussian(Fraction(400)), Binomial(1600), DiscreteGaussian(Fraction(900), 2)]
    with BudgetLedger(tmp_path / "ledger.db", BUDGETS) as led:
        for i, m in enumerate(mechs):
            led.charge("claims", f"s-{i}", [m])
        acc = Accountant()
        for m in mechs:
            acc.add(m)
        assert led.status()["claims"]["spent"] == pytest.approx(acc.epsilon(DELTA), rel=1e-12)


def test_the_ledger_survives_reopening_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with BudgetLedger(path, BUDGETS) as led:
        led.charge("patients", "s-1", [half()])
        spent = led.status()["patients"]["spent"]
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with BudgetLedger(path, BUDGETS) as led:
        assert led.status()["patients"]["spent"] == pytest.approx(spent)
        with pytest.raises(BudgetExceeded):
            led.charge("patients", "s-2", [half()])


def _charge_then_die(path: str) -> None:
    led = BudgetLedger(path, BUDGETS)
    led.charge("patients", "s-killed", [half()])
    os.kill(os.getpid(), signal.SIGKILL)  # the window between the charge and the output


def test_a_process_killed_after_its_charge_refunds_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "ledger.db")
    proc = mp.get_context("spawn").Process(target=_charge_then_die, args=(path,))
    proc.start()
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    with BudgetLedger(path, BUDGETS) as led:
        assert led.status()["patients"]["charges"] == 1
        with pytest.raises(BudgetExceeded):
            led.charge("patients", "s-after", [half()])


def _race(path: str, name: str, start: object, out: object) -> None:
    led = BudgetLedger(path, BUDGETS)
    start.wait()  # type: ignore[attr-defined]
    try:
        led.charge("patients", name, [half()])
        out.put((name, "charged"))  # type: ignore[attr-defined]
    except BudgetExceeded:
        out.put((name, "refused"))  # type: ignore[attr-defined]


def test_concurrent_processes_cannot_overspend(tmp_path: Path) -> None:
    """Four processes charge 0.8 each against a budget of 1 at the same moment: exactly one wins."""
    path = str(tmp_path / "ledger.db")
    BudgetLedger(path, BUDGETS).close()
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(path, f"s-{i}", start, out)) for i in range(4)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
    results = sorted(out.get(timeout=10)[1] for _ in procs)
    assert results == ["charged", "refused", "refused", "refused"]
    with BudgetLedger(path, BUDGETS) as led:
        assert led.status()["patients"]["charges"] == 1


def test_bad_budgets_and_charges_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="epsilon > 0"):
        Budget(0, DELTA)
    with pytest.raises(ValueError, match="delta"):
        Budget(1, 1.0)
    with (
        BudgetLedger(tmp_path / "ledger.db", BUDGETS) as led,
        pytest.raises(ValueError, match="at least one"),
    ):
        led.charge("patients", "s", [])


# ---------------------------------------------------------------------------------------- config, CLI
def _config_with_budgets(tmp_path: Path) -> Path:
    from actors.pki import make_cluster

    root = tmp_path / "cluster"
    make_cluster(root, 3)
    path = root / "party1" / "party.toml"
    text = path.read_text() + (
        '\n[budget]\nledger = "dp-ledger.db"\n\n[budget.datasets.patients]\nepsilon = 1.0\ndelta = 1e-9\n'
        "\n[budget.datasets.claims]\nepsilon = 3\ndelta = 1e-9\n"
    )
    path.write_text(text)
    return path


def test_the_config_reads_budgets_and_the_ledger_path(tmp_path: Path) -> None:
    from actors.config import load_config, write_config

    path = _config_with_budgets(tmp_path)
    cfg = load_config(path)
    assert cfg.budgets == {"patients": Budget(1.0, DELTA), "claims": Budget(3.0, DELTA)}
    assert cfg.ledger_path == path.parent / "dp-ledger.db"
    assert load_config(write_config(cfg, tmp_path / "copy.toml")) == cfg  # round trip


@pytest.mark.parametrize(
    ("old", "new", "key", "phrase"),
    [
        ("epsilon = 1.0", "epsilon = -1.0", "budget.datasets.patients.epsilon", "a positive number"),
        (
            "delta = 1e-9\n\n[budget.datasets.claims]",
            "delta = 2.0\n\n[budget.datasets.claims]",
            "budget.datasets.patients",
            "0 < delta < 1",
        ),
        ("epsilon = 1.0\n", "", "budget.datasets.patients", "needs both epsilon and delta"),
        ("[budget.datasets.claims]", '[budget.datasets."a b"]', "budget.datasets.a b", "a dataset name"),
        ('ledger = "dp-ledger.db"', 'ledger = "x"\nrho = 1', "budget.rho", "unknown key"),
    ],
    ids=["negative-epsilon", "delta-above-1", "missing-epsilon", "bad-name", "unknown-key"],
)
def test_bad_budget_configs_name_the_key(tmp_path: Path, old: str, new: str, key: str, phrase: str) -> None:
    from actors.config import load_config
    from protocols.errors import ConfigError

    path = _config_with_budgets(tmp_path)
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"'{key}'" in str(info.value) and phrase in str(info.value), str(info.value)


def test_spdz_budget_shows_spent_and_remaining(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from actors.cli import main
    from actors.config import load_config

    path = _config_with_budgets(tmp_path)
    cfg = load_config(path)
    with BudgetLedger(cfg.ledger_path, cfg.budgets) as led:
        spent = led.charge("patients", "s-1", [half()])
    assert main(["budget", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "patients" in out and "claims" in out and f"{spent:.4g}" in out
    assert main(["budget", "--config", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["datasets"]["patients"]["charges"] == 1
    assert doc["datasets"]["patients"]["remaining"] == pytest.approx(1.0 - spent)
    assert doc["datasets"]["claims"]["spent"] == 0
    path.write_text(path.read_text().replace("epsilon = 3", "epsilon = -3"))
    assert main(["budget", "--config", str(path)]) == 2
    assert "budget.datasets.claims.epsilon" in capsys.readouterr().err
