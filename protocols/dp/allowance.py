"""A session's declared privacy cost, and the allowance that holds its outputs to it.

A program that releases noisy values runs under a ``Declared`` cost: the dataset it reads, the total
``(epsilon, delta)`` of everything it will output, the mechanism, and the public clipping bounds the
owners clamp their rows to. The daemon makes the declaration part of what every party agrees on when
the session starts (the join round: a party whose declaration differs in anything, a smaller epsilon
say, is named and the session aborts), charges it to its own ledger before anything runs, and hands
the program an ``Allowance``: every noisy output (``Session.output(x, dp=...)``) spends from it, and
an output that would take the program's composed cost above its declaration is refused, so the charge
in the ledger is an upper bound on what the session released.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..errors import BudgetExceeded
from .accounting import Accountant, Mechanism
from .output import DP, MECHANISMS

MAX_DATASET = 64


@dataclass(frozen=True)
class Declared:
    dataset: str
    epsilon: float
    delta: float
    mechanism: str = "gaussian"
    bounds: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if (
            not isinstance(self.dataset, str)
            or not 0 < len(self.dataset) <= MAX_DATASET
            or not all(c.isalnum() or c in "_-." for c in self.dataset)
        ):
            raise ValueError(
                f"dataset must be a name of 1..{MAX_DATASET} letters, digits, '_', '-' or '.', "
                f"got {str(self.dataset)[:80]!r}"
            )
        for name, v in (("epsilon", self.epsilon), ("delta", self.delta)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{name} must be a number, got {v!r}")
        if not 0 < self.epsilon <= 100:
            raise ValueError(f"epsilon must be in (0, 100], got {self.epsilon!r}")
        if not 0 < self.delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {self.delta!r}")
        if self.mechanism not in MECHANISMS:
            raise ValueError(f"unknown DP mechanism {self.mechanism!r}: use one of {MECHANISMS}")
        if self.bounds is not None:
            b = self.bounds
            if (
                not isinstance(b, tuple)
                or len(b) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in b)
                or not all(math.isfinite(v) and abs(v) <= 2.0**40 for v in b)
                or not b[0] < b[1]
            ):
                raise ValueError(f"bounds must be two finite numbers lo < hi (|x| <= 2^40), got {b!r}")

    def describe(self) -> dict[str, Any]:
        """The declaration as every party sends it in the join round (compared field by field)."""
        return {
            "dataset": self.dataset,
            "epsilon": float(self.epsilon),
            "delta": float(self.delta),
            "mechanism": self.mechanism,
            "bounds": None if self.bounds is None else [float(self.bounds[0]), float(self.bounds[1])],
        }

    @classmethod
    def from_request(cls, raw: Any) -> Declared:
        """From a submit's ``dp`` field (a dict; ``ValueError`` naming what is wrong)."""
        if not isinstance(raw, dict):
            raise ValueError(
                f"dp must be a map of dataset, epsilon, delta[, mechanism, bounds], got {raw!r:.80}"
            )
        unknown = sorted(set(raw) - {"dataset", "epsilon", "delta", "mechanism", "bounds"})
        if unknown:
            raise ValueError(
                f"unknown dp fields {unknown} (known: dataset, epsilon, delta, mechanism, bounds)"
            )
        missing = [k for k in ("dataset", "epsilon", "delta") if k not in raw]
        if missing:
            raise ValueError(f"dp needs {', '.join(missing)}")
        bounds = raw.get("bounds")
        if isinstance(bounds, list):
            bounds = tuple(bounds)
        return cls(raw["dataset"], raw["epsilon"], raw["delta"], raw.get("mechanism", "gaussian"), bounds)

    def dp(self, sensitivity: Any = 1, scale: int = 1, **kw: Any) -> DP:
        """A ``DP`` for one of the program's outputs, from the declared total."""
        return DP(sensitivity, self.epsilon, self.delta, mechanism=self.mechanism, scale=scale, **kw)


class Allowance:
    """The declared cost of a running session; ``spend`` checks each noisy output against it."""

    def __init__(self, declared: Declared) -> None:
        self.declared = declared
        self.spent: list[Mechanism] = []

    def spend(self, mechanisms: list[Mechanism]) -> float:
        """Add an output's mechanisms; the session's composed epsilon (at the declared delta) after it.
        ``BudgetExceeded`` (nothing spent) if that is above the declared epsilon."""
        acc = Accountant()
        for m, k in Counter([*self.spent, *mechanisms]).items():  # composition commutes: equal ones at once
            acc.add(m, k)
        eps = acc.epsilon(self.declared.delta)
        if eps > self.declared.epsilon:
            raise BudgetExceeded(
                self.declared.dataset,
                f"the program's outputs would cost epsilon {eps:.4g}, above the {self.declared.epsilon:g} "
                "it declared",
            )
        self.spent.extend(mechanisms)
        return eps


__all__ = ["Allowance", "Declared"]
