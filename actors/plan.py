"""How much preprocessing a program consumes, counted by a dry run: for sizing pools in advance.

SPDZ programs are data-oblivious, so a run on the INSECURE test dealer with every request written
down (``protocols.preprocessing.plan.PlanRecorder``) tells the offline services exactly what to make
before the real run starts. See ``protocols.preprocessing.plan`` for which arguments to pass.
"""

from __future__ import annotations

from typing import Any

from protocols.preprocessing.plan import PlanRecorder

from .cluster import local_cluster


async def preprocessing_plan(
    program: Any,
    n: int,
    *args: Any,
    modulus: int | str | None = None,
    comparison: str | None = None,
    **kwargs: Any,
) -> dict[str, int]:
    """Party 0's consumption when ``n`` parties run ``program(session, *args, **kwargs)``, by pool,
    from a dry run on the INSECURE dealer (see the module's note on which arguments to pass).
    ``comparison`` is the sessions' ``Session(comparison=...)`` (``"binary"``: the plan counts AND
    triples, daBits and edaBits, ``and_triple``, ``dabit``, ``edabit:<k>``, as the pools name them)."""
    rec = PlanRecorder()
    options: dict[str, Any] = {} if modulus is None else {"modulus": modulus}
    if comparison is not None:
        options["session_options"] = {"comparison": comparison}
    async with local_cluster(n, preprocessing="dealer", interceptors={0: rec}, **options) as c:
        await c.run(program, *args, **kwargs)
    return dict(rec.counts)
