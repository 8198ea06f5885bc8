"""Applications on the secure types: statistics and regression over horizontally split data.

Every party holds some rows of one table; a program computes a joint result and reveals only that
result (to all, or to one party with ``to=``). The modules:

* ``table``: secret-sharing each party's rows into one ``Table``; ``agree`` on public parameters.
* ``stats``: ``count``, ``total``, ``mean``, ``variance``, ``covariance``, ``correlation``,
  ``mean_where`` and ``histogram``, on owner-private rows or on joint secrets.
* ``regression``: ``linear_regression`` (normal equations, solved securely), ``logistic_regression``
  (full-batch gradient descent), ``standardizer``, and ``predict`` on one party's private rows with a
  secret-shared model (``share_model``, or a model left secret by training).
* ``numeric``: the shared building blocks (normalized division, sums of products, comparisons of
  several offsets from one opening).
* ``pooled``: statistics and linear regression from per-party summaries of owner-private rows.
* ``programs``: all of it as programs for the registry (``spdz submit``, the daemon, ``local_cluster``).

What leaves a session, for every function: its declared result. On owner-private rows (a party's
own array, ``Private`` values) nothing else, not even the row counts; on joint secrets (a ``Table``)
also each party's row count (the input protocol announces array shapes). Each docstring says what
its result is. ``docs/local.md`` says what runs where. Example::

    async def prog(s: Session, rows: np.ndarray) -> dict:
        # this party's own rows: summarised locally, combined in MPC
        return {"mean": await stats.mean(s, rows), "corr": await stats.correlation(s, rows)}

    async with actors.local_cluster(3) as c:
        results = await c.run(prog, per_party=[(r,) for r in rows_of_each_party])
"""

from . import regression, stats
from .table import ParameterMismatch, Table, agree, share_table

__all__ = ["ParameterMismatch", "Table", "agree", "regression", "share_table", "stats"]
