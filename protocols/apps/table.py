"""Horizontally split tables: every party holds some rows of one table with the same columns.

``share_table`` secret-shares each party's rows in turn (``SecretFix.input`` per owner) and stacks
them in party order into one ``(N, d)`` secret matrix. What that costs in privacy: the input protocol
announces each owner's array shape, so **every party learns how many rows every other party has**
(as with the built-in ``sum``/``mean`` programs); the values stay secret. Cost: input masks only (no
triples), two rounds per party.

``agree`` is how parties make sure they run with the same *public* parameters (bin edges, feature
counts, hyperparameters) when each brought its own copy, e.g. through ``spdz submit``: different
public constants would otherwise surface as an unhelpful MAC-check failure (a public constant is
added by party 0 to its share and by everyone to their MAC shares) or, worse, as a wrong result.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..fixedpoint import FixedFormat
from ..online import Session
from ..sectypes import SecretFix
from ..shares import SharedArray

__all__ = ["ParameterMismatch", "Table", "agree", "as_rows", "pick", "share_table"]


class ParameterMismatch(ValueError):
    """Parties passed different public parameters, or inputs whose shapes do not fit together. Every
    party raises it at the same point (the shapes and digests it is decided from are public)."""


@dataclass(frozen=True)
class Table:
    """Every party's rows, secret-shared and stacked in party order: ``x`` is ``(N, d)``.

    ``counts`` (rows per party) and ``vector`` (whether the parties gave 1-d arrays, i.e. one
    column whose results are scalars, as numpy would return them) are public.
    """

    x: SecretFix
    counts: tuple[int, ...]
    vector: bool = False

    @property
    def rows(self) -> int:
        return int(sum(self.counts))

    @property
    def cols(self) -> int:
        return int(self.x.shape[1])

    @property
    def fmt(self) -> FixedFormat:
        return self.x.fmt

    @property
    def session(self) -> Session:
        return self.x.session

    def column(self, j: int) -> SecretFix:
        """Column ``j`` as an ``(N,)`` secret vector (a local gather)."""
        return self.x[:, j]

    def columns(self, idx: list[int]) -> Table:
        """The sub-table of the given columns."""
        return Table(self.x[:, np.asarray(idx, dtype=np.int64)], self.counts, False)


def pick(x: SharedArray, idx: np.ndarray) -> SharedArray:
    """Elements of a (flattened) shared array at ``idx`` as a flat array: a local gather."""
    flat = np.asarray(idx, dtype=np.int64).reshape(-1)
    return SharedArray(x.ctx, x.value[:, flat], x.mac[:, flat])


def as_rows(mine: Any) -> np.ndarray | None:
    """This party's rows as a float array (1-d: one column; 2-d: rows), or ``None`` for no rows."""
    if mine is None:
        return None
    arr = np.asarray(mine, dtype=np.float64)
    if arr.ndim not in (1, 2):
        raise ValueError(f"rows must be a 1-d or 2-d array, got shape {arr.shape}")
    return arr


async def share_table(s: Session, mine: Any, fmt: FixedFormat | None = None) -> Table:
    """Secret-share every party's rows (``mine`` here; ``None`` or an empty array: no rows).

    All parties must give 1-d arrays, or all 2-d arrays with the same number of columns (a party
    without rows may give ``None``). Reveals the row counts (see the module docstring).
    """
    fmt = fmt or FixedFormat()
    rows = as_rows(mine)
    local = np.zeros(0) if rows is None else rows
    parts: list[SecretFix] = []
    for owner in range(s.n):
        parts.append(await SecretFix.input(s, local if owner == s.party else None, owner=owner, fmt=fmt))
    shapes = [p.shape for p in parts]
    full = [sh for sh in shapes if math.prod(sh) > 0]
    if not full:
        raise ParameterMismatch("no party has any rows")
    if any(len(sh) != len(full[0]) for sh in full) or any(sh[1:] != full[0][1:] for sh in full):
        raise ParameterMismatch(f"the parties' rows do not have the same columns: shapes {shapes}")
    vector = len(full[0]) == 1
    d = 1 if vector else full[0][1]
    if d < 1:
        raise ParameterMismatch("the rows have no columns")
    counts = tuple(sh[0] if math.prod(sh) > 0 else 0 for sh in shapes)
    stacked = SharedArray.concat([p.shares for p in parts if p.size]).reshape(sum(counts), d)
    return Table(SecretFix(s, stacked, fmt), counts, vector)


async def ensure_table(s: Session, data: Any, fmt: FixedFormat | None = None) -> Table:
    """``data`` if it is already a shared ``Table`` (or a secret ``(N, d)``/``(N,)`` array: joint secrets,
    e.g. a column computed from several parties' shares), else this party's rows, shared now."""
    if isinstance(data, SecretFix):
        if data.session is not s:
            raise ValueError("the secret array belongs to another session")
        if data.ndim not in (1, 2):
            raise ParameterMismatch(f"a table is a 1-d or 2-d secret array, not of shape {data.shape}")
        x = data if data.ndim == 2 else data.reshape(data.size, 1)
        return Table(x, (x.shape[0],), data.ndim == 1)
    if isinstance(data, Table):
        if data.session is not s:
            raise ValueError("the table belongs to another session")
        return data
    return await share_table(s, data, fmt)


def _canonical(value: Any) -> bytes:
    if isinstance(value, np.ndarray):
        return repr((value.dtype.kind, value.shape, value.astype(np.float64).tolist())).encode()
    if isinstance(value, (list, tuple)):
        return b"[" + b",".join(_canonical(v) for v in value) + b"]"
    if isinstance(value, dict):
        return b"{" + b",".join(_canonical(k) + b":" + _canonical(v) for k, v in sorted(value.items())) + b"}"
    if isinstance(value, (float, np.floating)):
        return repr(float(value)).encode()
    if isinstance(value, (int, np.integer)):
        return repr(int(value)).encode()
    return repr(value).encode()


async def agree(s: Session, what: str, value: Any) -> None:
    """Raise ``ParameterMismatch`` at every party unless every party passed an equal ``value``.

    Each party inputs a 120-bit digest of its (public) value and all digests are output, MAC-checked:
    public parameters are not secret, so nothing private is revealed. Costs one input per party and
    one output (about a dozen rounds).
    """
    digest = hashlib.sha256(b"trio-spdz/agree/v1" + what.encode() + b"\0" + _canonical(value)).digest()
    words = [int.from_bytes(digest[i : i + 7], "big") for i in (0, 7)]  # two 56-bit numbers
    mine = np.asarray(words, dtype=np.int64)
    shared = [await s.input(mine if j == s.party else None, owner=j) for j in range(s.n)]
    out = await s.output(SharedArray.concat(shared))
    assert out is not None
    seen = np.asarray(out).reshape(s.n, 2)
    if not all(np.array_equal(seen[0], row) for row in seen[1:]):
        differ = [j for j in range(s.n) if not np.array_equal(seen[j], seen[0])]
        raise ParameterMismatch(f"the parties passed different {what} (parties {differ} differ from party 0)")
