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
import sqlite3
import time
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from protocols.dp.accounting import Accountant, Binomial, DiscreteGaussian, Mechanism
from protocols.errors import BudgetExceeded

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
        else:
            raise TypeError(f"not a DP mechanism: {type(m).__name__}")
    return json.dumps(out, separators=(",", ":"))


def decode(text: str) -> list[Mechanism]:
    out: list[Mechanism] = []
    for d in json.loads(text):
        if d["kind"] == "gaussian":
            out.append(DiscreteGaussian(Fraction(*d["sigma2"]), d["sensitivity"]))
        else:
            out.append(Binomial(d["m"], d["sensitivity"]))
    return out


class BudgetLedger:
    def __init__(self, path: Path | str, budgets: Mapping[str, Budget]) -> None:
        self.path = Path(path)
        self.budgets = dict(budgets)
        self._db = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
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
        acc = Accountant()
        for (text,) in self._db.execute(
            "SELECT mechanisms FROM charges WHERE dataset = ? ORDER BY id", (dataset,)
        ):
            for m in decode(text):
                acc.add(m)
        return acc

    def charge(self, dataset: str, session: str, mechanisms: Sequence[Mechanism]) -> float:
        """Charge ``mechanisms`` to ``dataset`` for ``session``, committed before returning; the
        dataset's total epsilon afterwards. ``BudgetExceeded`` (nothing written) over the budget."""
        budget = self.budgets.get(dataset)
        if budget is None:
            raise BudgetExceeded(dataset, "this party's config has no budget of that name")
        if not mechanisms:
            raise ValueError("a charge needs at least one mechanism")
        text = encode(mechanisms)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            acc = self._accountant(dataset)
            before = acc.epsilon(budget.delta)
            for m in mechanisms:
                acc.add(m)
            after = acc.epsilon(budget.delta)
            if after > budget.epsilon:
                raise BudgetExceeded(
                    dataset,
                    f"this output needs epsilon {after - before:.4g} more; {before:.4g} of "
                    f"{budget.epsilon:g} is spent (delta {budget.delta:g})",
                )
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
