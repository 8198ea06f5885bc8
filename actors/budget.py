"""A party's privacy budget ledger: SQLite in WAL mode, one budget per named dataset.

Every differentially private output charges its mechanisms to the dataset it is computed from, in one
committed transaction, *before* the value is opened:

* ``BEGIN IMMEDIATE`` takes the database's write lock, so concurrent sessions (threads or processes)
  charge one at a time and cannot both pass the check;
* the check is the accountant's: the dataset's past charges and the new one composed
  (``protocols.dp.accounting``, i.e. ``dp-accounting``'s privacy loss distributions), and the
  total ``epsilon`` at the budget's ``delta`` compared with the budget's ``epsilon``. Over the limit,
  nothing is written and ``BudgetExceeded`` names the dataset;
* the charge is committed with ``synchronous = FULL`` before ``charge`` returns: a crash after it, in
  the window before the output, refunds nothing, and the ledger survives restarts.

Only this party's ledger decides what this party opens; each party enforces its own budgets.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from protocols.dp.accounting import Accountant, Binomial, DiscreteGaussian, EpsDelta, Mechanism
from protocols.errors import BudgetExceeded, ConfigError

from .config import Budget

BUSY_TIMEOUT_S = 30.0
SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset TEXT NOT NULL,
    session TEXT NOT NULL,
    mechanisms TEXT NOT NULL,
    epsilon_after REAL NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS charges_by_dataset ON charges (dataset);
"""


def encode(mechanisms: Sequence[Mechanism]) -> str:
    out = []
    for m in mechanisms:
        if isinstance(m, DiscreteGaussian):
            s2 = Fraction(m.sigma2)
            out.append(
                {"kind": "gaussian", "sigma2": [s2.numerator, s2.denominator], "sensitivity": m.sensitivity}
            )
        elif isinstance(m, Binomial):
            out.append({"kind": "binomial", "m": m.m, "sensitivity": m.sensitivity})
        elif isinstance(m, EpsDelta):
            out.append({"kind": "epsdelta", "epsilon": float(m.epsilon), "delta": float(m.delta)})
        else:
            raise TypeError(f"not a DP mechanism: {type(m).__name__}")
    return json.dumps(out, separators=(",", ":"))


def decode(text: str) -> list[Mechanism]:
    out: list[Mechanism] = []
    for d in json.loads(text):
        if d["kind"] == "gaussian":
            out.append(DiscreteGaussian(Fraction(*d["sigma2"]), d["sensitivity"]))
        elif d["kind"] == "epsdelta":
            out.append(EpsDelta(d["epsilon"], d["delta"]))
        else:
            out.append(Binomial(d["m"], d["sensitivity"]))
    return out


class BudgetLedger:
    def __init__(self, path: Path | str, budgets: Mapping[str, Budget]) -> None:
        self.path = Path(path)
        self.budgets = dict(budgets)
        # one connection, used by one thread at a time (the daemon charges from a worker thread under
        # its own lock; ``check_same_thread`` would refuse the hand-over)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._db = sqlite3.connect(
                str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as e:
            raise ConfigError(f"the budget ledger {self.path} cannot be opened: {e}") from e
        self._running: dict[str, tuple[int, Accountant]] = {}  # dataset: (last charge id composed, its sum)
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise RuntimeError(f"the budget ledger {self.path} could not switch to WAL mode (got {mode!r})")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> BudgetLedger:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _accountant(self, dataset: str) -> Accountant:
        """The composition of every charge to ``dataset`` in the database now (a copy). A running sum:
        only charges after the last one composed are read and added (other processes' among them)."""
        last, acc = self._running.get(dataset, (0, Accountant()))
        rows = self._db.execute(
            "SELECT id, mechanisms FROM charges WHERE dataset = ? AND id > ? ORDER BY id", (dataset, last)
        ).fetchall()
        if rows:
            acc = acc.copy()
            for _cid, text in rows:
                for m in decode(text):
                    acc.add(m)
            last = rows[-1][0]
            self._running[dataset] = (last, acc)
        return acc.copy()

    def _budget(self, dataset: str, mechanisms: Sequence[Mechanism]) -> Budget:
        budget = self.budgets.get(dataset)
        if budget is None:
            raise BudgetExceeded(dataset, "this party's config has no budget of that name")
        if not mechanisms:
            raise ValueError("a charge needs at least one mechanism")
        return budget

    def _after(self, dataset: str, budget: Budget, mechanisms: Sequence[Mechanism]) -> float:
        """The dataset's total epsilon with ``mechanisms`` added; ``BudgetExceeded`` above the budget."""
        acc = self._accountant(dataset)
        before = acc.epsilon(budget.delta)
        for m in mechanisms:
            acc.add(m)
        after = acc.epsilon(budget.delta)
        if after > budget.epsilon:
            more = (
                "more than any budget allows at this delta"
                if math.isinf(after)
                else f"{after - before:.4g} more"
            )
            raise BudgetExceeded(
                dataset,
                f"this output needs epsilon {more}; {before:.4g} of {budget.epsilon:g} is spent "
                f"(delta {budget.delta:g})",
            )
        return after

    def check(self, dataset: str, mechanisms: Sequence[Mechanism]) -> float:
        """What ``charge`` would leave spent, or its ``BudgetExceeded``; nothing is written (a
        session's first budget round: no party charges unless every party can)."""
        budget = self._budget(dataset, mechanisms)
        self._db.execute("BEGIN")
        try:
            return self._after(dataset, budget, mechanisms)
        finally:
            self._db.execute("ROLLBACK")

    def charge(self, dataset: str, session: str, mechanisms: Sequence[Mechanism]) -> float:
        """Charge ``mechanisms`` to ``dataset`` for ``session``, committed before returning; the
        dataset's total epsilon afterwards. ``BudgetExceeded`` (nothing written) over the budget."""
        budget = self._budget(dataset, mechanisms)
        text = encode(mechanisms)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            after = self._after(dataset, budget, mechanisms)
            self._db.execute(
                "INSERT INTO charges (dataset, session, mechanisms, epsilon_after, at) "
                "VALUES (?, ?, ?, ?, ?)",
                (dataset, session, text, after, time.time()),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return after

    def status(self) -> dict[str, dict[str, float]]:
        """Per dataset: the budget, what is spent (the accountant's total epsilon at the budget's
        delta), what remains, and the number of charges."""
        out = {}
        for name, budget in sorted(self.budgets.items()):
            acc = self._accountant(name)
            spent = acc.epsilon(budget.delta)
            (count,) = self._db.execute("SELECT COUNT(*) FROM charges WHERE dataset = ?", (name,)).fetchone()
            out[name] = {
                "epsilon": budget.epsilon,
                "delta": budget.delta,
                "spent": spent,
                "remaining": max(0.0, budget.epsilon - spent),
                "charges": float(count),
            }
        return out


__all__ = ["Budget", "BudgetLedger"]
