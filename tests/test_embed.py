"""The embedding API: ``async with actors.Party(config) as p: await p.run(prog, ...)`` inside a Trio
program, over real TLS on loopback, with MASCOT preprocessing, from configs written by ``keygen``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trio

import actors
from actors.cluster import loopback_configs
from actors.config import Backoff, load_config
from actors.offline import Watermarks
from protocols.online import Session

pytestmark = pytest.mark.slow  # real processes or MASCOT: left out of the fast subset

MARKS = Watermarks(
    triple=(256, 512), mask=(64, 256), batch={k: 256 for k in ("triple", "mask", "square", "bit", "random")}
)


def configs(root: Path, n: int) -> list[Path]:
    return loopback_configs(root, n, field="p61", watermarks=MARKS, reconnect=Backoff(0.05, 0.5))


async def weighted_total(s: Session, mine: list[int]) -> Any:
    xs = [await s.input(np.array(mine) if s.party == j else None, owner=j) for j in range(s.n)]
    total = s.sum(await s.mul(xs[0], xs[1]))
    for x in xs[2:]:
        total = total + s.sum(x)
    return int(await s.output(total))


async def test_parties_embedded_in_one_trio_program(tmp_path: Path) -> None:
    """Three parties started at different moments (the last one 0.3 s late) each run the same
    session through the embedding API and get the plaintext result; the ``async with`` stops them."""
    paths = configs(tmp_path, 3)
    data = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    expect = sum(a * b for a, b in zip(data[0], data[1], strict=True)) + sum(data[2])
    results: dict[int, Any] = {}

    async def one(i: int, delay: float) -> None:
        await trio.sleep(delay)
        async with actors.Party(paths[i]) as p:
            assert p.id == i and p.port == load_config(paths[i]).listen.port
            results[i] = await p.run(weighted_total, data[i], session="embedded-1")

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for i, delay in enumerate([0.0, 0.1, 0.3]):
                nursery.start_soon(one, i, delay)
    assert results == {0: expect, 1: expect, 2: expect}


async def test_an_error_inside_the_block_comes_out_as_itself(tmp_path: Path) -> None:
    paths = configs(tmp_path, 2)
    with trio.fail_after(30):
        try:
            async with actors.Party(paths[0]):
                raise KeyError("mine")
        except KeyError as e:
            assert e.args == ("mine",)
        else:
            raise AssertionError("the block's error was swallowed")


def test_the_configured_king_threshold_reaches_every_session(tmp_path: Path) -> None:
    """``king_min`` from the config file is the sessions' option (every party must use one value);
    an option given in code wins over the file."""
    path = configs(tmp_path, 3)[0]
    path.write_text(path.read_text().replace("king_min = 65536", "king_min = 0"))
    assert actors.Party(path).engine.session_options["king_min"] == 0
    party = actors.Party(path, session_options={"king_min": 5, "check_bound": 10})
    assert party.engine.session_options == {"king_min": 5, "check_bound": 10}


def readme_example() -> str:
    """The README's first Python example, verbatim."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    match = re.search(r"## Use it from Python\n\n```python\n(.*?)```", readme, re.S)
    assert match is not None, "the README lost its Python example"
    return match.group(1)


@pytest.mark.parametrize("configured", [False, True])
def test_the_readme_example_prints_only_its_result(tmp_path: Path, configured: bool) -> None:
    """As a library, trio-spdz logs through ``logging`` and says nothing unless the application
    configures logging: the example prints its result and nothing else. With ``basicConfig`` at
    INFO the same run shows the parties' events, under the ``spdz.*`` loggers."""
    code = readme_example()
    if configured:
        code = "import logging\nlogging.basicConfig(level=logging.INFO)\n" + code
    script = tmp_path / "example.py"
    script.write_text(code)
    proc = subprocess.run(  # noqa: S603 (our own example)
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        proc.stdout.strip()
        == "[(array([9, 8]), array([ 3, -8])), (array([9, 8]), None), (array([9, 8]), None)]"
    )
    if configured:
        assert "INFO:spdz.engine:session_started" in proc.stderr, proc.stderr[:2000]
    else:
        assert proc.stderr == "", proc.stderr[:2000]


async def test_an_embedded_dp_session_charges_every_partys_own_ledger(tmp_path: Path) -> None:
    """``Party.run(prog, ..., dp=Declared(...))``: the declarations are compared, every party's own
    ledger (``[budget]`` in its config) is charged, the program's noisy output spends from the
    declaration, and the next session that would pass the budget is refused at every party."""
    import dataclasses

    from actors.budget import BudgetLedger
    from actors.config import Budget, write_config
    from protocols.dp import DP
    from protocols.dp.allowance import Declared
    from protocols.errors import AbortError, BudgetExceeded

    paths = loopback_configs(tmp_path, 3, field="p127", watermarks=MARKS, reconnect=Backoff(0.05, 0.5))
    for p in paths:
        write_config(dataclasses.replace(load_config(p), budgets={"visits": Budget(1.0, 1e-6)}), p)
    declared = Declared("visits", 0.7, 1e-9)

    async def noisy_total(s: Session, mine: list[int]) -> Any:
        xs = [await s.input(np.array(mine) if s.party == j else None, owner=j) for j in range(s.n)]
        total = s.sum(xs[0]) + s.sum(xs[1]) + s.sum(xs[2])
        return int(await s.output(total, dp=DP(1, 0.7, 1e-9)))

    data = [[1, 2, 3], [4, 5], [6]]
    results: dict[tuple[int, str], Any] = {}

    async def one(i: int) -> None:
        async with actors.Party(paths[i]) as p:
            results[i, "first"] = await p.run(noisy_total, data[i], session="dp-1", dp=declared)
            try:
                await p.run(noisy_total, data[i], session="dp-2", dp=declared)
            except BudgetExceeded as e:
                results[i, "second"] = e.reason
            # a program whose outputs cost more than it declared is stopped by its own allowance
            # (at every party; the first to get there aborts the others, with its reason)
            try:
                await p.run(noisy_total, data[i], session="dp-3", dp=Declared("visits", 0.1, 1e-9))
            except AbortError as e:
                results[i, "third"] = e.reason

    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            for i in range(3):
                nursery.start_soon(one, i)
    firsts = {results[i, "first"] for i in range(3)}
    assert len(firsts) == 1 and abs(firsts.pop() - 21) < 200
    for i in range(3):
        assert "party 0, 1, 2 refused" in results[i, "second"], results
        assert "above the 0.1 it declared" in results[i, "third"], results
        with BudgetLedger(load_config(paths[i]).ledger_path, {"visits": Budget(1.0, 1e-6)}) as led:
            st = led.status()["visits"]
        assert st["charges"] == 2 and st["spent"] <= 1.0, st  # the 0.7 and the 0.1 (outputs refused)
