"""Differentially private outputs through real ``spdz party`` daemons: the declared cost agreed at the
join, charged to every party's own ledger before anything is opened, refused at the limit at every
party alike, kept across a kill -9 in the window between the charge and the output, and never
overspent by concurrent sessions (the [dp] issue's budget tests, with real processes).

Each test starts its own 3-party cluster (``test_daemon.Daemons``, MASCOT at p61) with the budgets in
every party's config.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_daemon import Daemons, scrape, serving, spdz_run, wait_until

from actors.budget import BudgetLedger
from actors.config import Budget, load_config, write_config
from actors.privacy import PAUSE_AFTER_CHARGE_ENV
from protocols.dp.accounting import calibrate_sigma2

pytestmark = pytest.mark.slow  # real processes: left out of the fast subset

DATASET = "patients"
BUDGET = Budget(1.0, 1e-6)
ROWS = [[1.0] * 40, [2.0] * 25, [3.0] * 35]  # 100 rows
# the shared cluster's datasets, one per test so that the tests' budgets are independent; party 2's
# budget for "small" is half the others'
SHARED = ("limit", "agree", "small", "cli", "race")


def cluster(
    root: Path,
    budgets: dict[int, dict[str, Budget]] | None = None,
    config: dict[str, Any] | None = None,
    **kw: Any,
) -> Daemons:
    d = Daemons(root, 3, field="p127", config={"budgets": {DATASET: BUDGET}, **(config or {})}, **kw)
    for i, b in (budgets or {}).items():
        cfg = load_config(d.configs[i])
        write_config(dataclasses.replace(cfg, budgets=b), d.configs[i])
    return d


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemons]:
    """One cluster for the tests that need nothing of their own (each uses its own dataset)."""
    every = {name: BUDGET for name in SHARED}
    d = cluster(
        tmp_path_factory.mktemp("dp"),
        budgets={i: every if i != 2 else {**every, "small": Budget(0.5, 1e-6)} for i in range(3)},
        metrics=True,
    )
    yield from serving(d)


def dp(epsilon: float = 0.6, delta: float = 1e-9, dataset: str = DATASET, **extra: Any) -> dict[str, Any]:
    return {"dataset": dataset, "epsilon": epsilon, "delta": delta, **extra}


def count_all(d: Daemons, session: str, dps: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
    reqs = [
        {"op": "submit", "program": "stats_count", "session": session, "input": ROWS[i], "dp": dps[i]}
        for i in range(3)
    ]
    return d.call_all(reqs)  # type: ignore[arg-type,return-value]


def budgets(d: Daemons, i: int, dataset: str = DATASET, *, cli: bool = False) -> dict[str, Any]:
    """Party i's budget for ``dataset`` as ``spdz budget --json`` prints it (``cli``), or from its
    ledger read in this process (the same figures, without a process start per look)."""
    if cli:
        rc, out, err = spdz_run("budget", "--config", str(d.configs[i]), "--json")
        assert rc == 0, err
        return json.loads(out)["datasets"][dataset]
    cfg = load_config(d.configs[i])
    with BudgetLedger(cfg.ledger_path, cfg.budgets) as led:
        return led.status()[dataset]


def charges(d: Daemons, i: int, dataset: str = DATASET) -> list[str]:
    """The sessions charged in party i's ledger, read directly (WAL: a reader beside the daemon)."""
    db = sqlite3.connect(str(load_config(d.configs[i]).ledger_path))
    try:
        return [r[0] for r in db.execute("SELECT session FROM charges WHERE dataset = ?", (dataset,))]
    except sqlite3.OperationalError:  # no table yet
        return []
    finally:
        db.close()


def test_a_noisy_count_is_charged_at_every_party_and_the_next_is_refused_at_the_limit(
    shared: Daemons,
) -> None:
    d, ds = shared, "limit"
    first = count_all(d, "limit-1", [dp(dataset=ds)] * 3)
    assert all(r["ok"] for r in first), first
    counts = {r["result"]["count"] for r in first}
    assert len(counts) == 1  # every party opened the same noisy value
    # sigma2 for epsilon 0.6 is about 84 per party: three draws, sd about 16; 10 sd is 160
    assert abs(counts.pop() - 100) < 160
    assert all(r["result"]["dp"]["epsilon"] == 0.6 for r in first)
    for i in range(3):
        got = budgets(d, i, ds, cli=i == 0)
        assert got["charges"] == 1 and got["spent"] == pytest.approx(0.6, abs=1e-3), got
        assert d.status(i)["budgets"][ds]["spent"] == pytest.approx(0.6, abs=1e-3)
        port = d.metrics_ports[i]
        assert port is not None
        code, body = scrape(port)
        assert code == 200, body
        metric = f'spdz_dp_epsilon_spent{{dataset="{ds}"}} '
        line = next(x for x in body.splitlines() if x.startswith(metric))
        assert float(line[len(metric) :]) == pytest.approx(0.6, abs=1e-3), line
    # a second 0.6 would compose to about 1.2 > 1: refused at every party, naming the dataset
    second = count_all(d, "limit-2", [dp(dataset=ds)] * 3)
    for r in second:
        assert not r["ok"] and r["kind"] == "budget_exceeded", r
        assert f"privacy budget of dataset '{ds}'" in r["error"], r
        assert "party 0, 1, 2 refused" in r["error"], r
    assert [budgets(d, i, ds)["charges"] for i in range(3)] == [1, 1, 1]  # the refusal wrote nothing
    # a cheaper program still fits (0.3 composes with 0.6 to below 1)
    third = count_all(d, "limit-3", [dp(0.3, dataset=ds)] * 3)
    assert all(r["ok"] for r in third), third
    assert all(budgets(d, i, ds)["spent"] <= 1.0 for i in range(3))


def test_declarations_must_agree_and_one_partys_refusal_costs_the_others_nothing(shared: Daemons) -> None:
    d = shared
    # party 1 claims a smaller cost than the others declare: caught at the join, nothing charged
    got = count_all(
        d, "claim", [dp(0.6, dataset="agree"), dp(0.3, dataset="agree"), dp(0.6, dataset="agree")]
    )
    assert not any(r["ok"] for r in got), got
    for r in got:  # whoever saw the difference first aborted, with both declarations in the reason
        assert "declared the privacy cost" in r["error"] and "epsilon=0.3" in r["error"], r
    # party 1 claims no cost at all (an exact output): caught the same way
    got = count_all(d, "exact", [dp(0.6, dataset="agree"), None, dp(0.6, dataset="agree")])
    assert not any(r["ok"] for r in got), got
    for r in got:
        assert "declared the privacy cost" in r["error"] and "none (an exact output)" in r["error"], r
    # party 2's own budget is smaller: every party refuses, naming party 2; nobody paid
    got = count_all(d, "small", [dp(0.6, dataset="small")] * 3)
    for r in got:
        assert r["kind"] == "budget_exceeded" and "party 2 refused" in r["error"], r
    assert [charges(d, i, ds) for i in range(3) for ds in ("agree", "small")] == [[]] * 6
    # a dataset party 0 has no budget for
    other = {"dataset": "claims", "epsilon": 0.1, "delta": 1e-9}
    got = count_all(d, "nobudget", [other] * 3)
    for r in got:
        assert r["kind"] == "budget_exceeded" and "'claims'" in r["error"], r
    assert "no budget of that name" in got[0]["error"]


def test_bad_dp_requests_are_refused_before_anything_runs(shared: Daemons) -> None:
    d = shared
    bad = [
        ({"program": "sum", "input": [1], "dp": dp()}, "has no differentially private output"),
        ({"program": "stats_sum", "input": [1.0], "dp": dp()}, "needs public clipping bounds"),
        ({"program": "stats_count", "input": [1.0], "dp": dp(epsilon=-1)}, "epsilon must be in"),
        ({"program": "stats_count", "input": [1.0], "dp": {"dataset": DATASET}}, "dp needs epsilon"),
        ({"program": "stats_count", "input": [1.0], "dp": dp(rho=1)}, "unknown dp fields ['rho']"),
        (
            {"program": "stats_count", "input": [1.0], "dp": dp(mechanism="laplace")},
            "unknown DP mechanism",
        ),
    ]
    for req, phrase in bad:
        r = d.call_all([{"op": "submit", **req}, None, None])[0]
        assert r is not None and not r["ok"] and r["kind"] == "bad_request", r
        assert phrase in r["error"], (phrase, r)
    # the CLI's flags: --epsilon without --dp, --bounds malformed
    rc, _, err = spdz_run(
        "submit", "--config", str(d.configs[0]), "--program", "stats_count", "--input", "/dev/null",
        "--epsilon", "1",
    )  # fmt: skip
    assert rc == 2 and "--epsilon needs --dp" in err, err


def test_dp_sum_mean_and_histogram_through_the_cli(shared: Daemons, tmp_path: Path) -> None:
    """``spdz submit --dp ... --bounds`` for the statistics: every party prints the same noisy value,
    within 6 predicted standard deviations of the clamped statistic, and pays for each."""
    d = shared
    files, hist = [], []
    for i in range(3):
        f = tmp_path / f"in{i}.txt"
        f.write_text("\n".join(str(v) for v in [10.0, 20.0, 500.0][: i + 1]) + "\n")
        files.append(f)
        h = tmp_path / f"hist{i}.txt"  # 3 edges (2 bins), then the values: 5 in the first, 1
        h.write_text("\n".join(str(v) for v in [3, 0, 25, 50, 10.0, 20.0, 30.0][: 4 + i + 1]) + "\n")
        hist.append(h)
    flags = ("--dp", "cli", "--epsilon", "0.3", "--delta", "1e-9", "--json")
    bounded = (*flags, "--bounds", "0:50")

    def same(program: str, inputs: list[Path], session: str, *extra: str) -> Any:
        out = d.run_all(program, inputs, "--session", session, *extra)
        assert all(rc == 0 for rc, _, _ in out), out
        got = [json.loads(so) for _, so, _ in out]
        assert all(g == got[0] for g in got), got
        return got[0]

    # clamped: 10 + (10 + 20) + (10 + 20 + 50) = 120; the owners' sums on a grid of 50 / 1,023,
    # so one row moves the total by 1,024 units; three parties' draws of that sigma2
    sd = math.sqrt(3 * calibrate_sigma2(0.3, 1e-9, 1024)) * 50 / 1023
    total = same("stats_sum", files, "sum-dp", *bounded)
    assert abs(total["sum"] - 120.0) < 6 * sd and total["dp"]["bounds"] == [0.0, 50.0], total
    mean = same("stats_mean", files, "mean-dp", *bounded)["mean"]
    assert 0.0 <= mean <= 50.0  # post-processed: clamped to the bounds
    counts = same("stats_histogram", hist, "hist-dp", *flags)["counts"]
    sd1 = math.sqrt(3 * calibrate_sigma2(0.3, 1e-9, 1))  # one row changes one bin by one
    assert len(counts) == 2 and all(abs(c - t) < 6 * sd1 for c, t in zip(counts, [5, 1], strict=True))
    assert [budgets(d, i, "cli")["charges"] for i in range(3)] == [3, 3, 3]


def test_a_daemon_killed_between_its_charge_and_the_output_keeps_the_charge(tmp_path: Path) -> None:
    """Party 0 pauses after committing its charge (a fault-injection knob for this test); it is
    killed -9 there, before anything is opened. The others' sessions abort; party 0's ledger, read
    after a restart, still holds the charge, and the next program that would not fit is refused."""
    # a short peer timeout: the others notice party 0 is gone within seconds
    d = cluster(tmp_path / "c", env={0: {PAUSE_AFTER_CHARGE_ENV: "60"}}, config={"peer_timeout": 3.0})
    try:
        d.start()
        d.wait_preprocessing()
        pending = [d.submit(i, "stats_count", _rows_file(tmp_path, i), "--session", "window", "--dp", DATASET,
                            "--epsilon", "0.7", "--delta", "1e-9") for i in range(3)]  # fmt: skip
        wait_until("party 0's charge to be committed", lambda: charges(d, 0) == ["job/window"], 30, d.logs)
        d.kill(0)
        out = d.finish(pending)
        assert out[0][0] != 0  # party 0's client lost its daemon: no output
        for rc, so, se in out[1:]:
            assert rc != 0 and "aborted" in se, (rc, so, se)
        d.extra_env = {}
        d.start([0])
        assert charges(d, 0) == ["job/window"]
        assert budgets(d, 0, cli=True)["spent"] == pytest.approx(0.7, abs=1e-3)
        d.wait_preprocessing()
        again = count_all(d, "after", [dp(0.6)] * 3)  # 0.7 + 0.6 > 1 at party 0 (and the others)
        assert all(not r["ok"] and r["kind"] == "budget_exceeded" for r in again), again
        assert "party 0" in again[1]["error"], again[1]
    finally:
        d.close()


def test_concurrent_sessions_cannot_overspend(shared: Daemons) -> None:
    """Four sessions at once, each 0.6 against a budget of 1 (any two compose to 1.2): at most one
    completes, and no party's ledger passes its budget."""
    d = shared
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda k: count_all(d, f"race-{k}", [dp(dataset="race")] * 3), range(4)))
    done = [k for k, r in enumerate(runs) if all(x["ok"] for x in r)]
    assert len(done) <= 1, runs
    for k, r in enumerate(runs):
        if k not in done:
            assert all(not x["ok"] for x in r), r
            assert all(x["kind"] in ("budget_exceeded", "abort") for x in r), r
    for i in range(3):
        assert budgets(d, i, "race")["spent"] <= BUDGET.epsilon
        assert len(charges(d, i, "race")) <= 1


def _rows_file(tmp_path: Path, i: int) -> Path:
    f = tmp_path / f"rows{i}.txt"
    f.write_text("\n".join(str(v) for v in ROWS[i]) + "\n")
    return f
