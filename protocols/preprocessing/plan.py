"""How much preprocessing a program consumes: the recorder of a dry run (``actors.plan`` runs it).

SPDZ programs are data-oblivious: which material a program draws, and how much, depends on the
shapes of its inputs and on public parameters, never on secret values. So a run of the program on
the INSECURE test dealer, with every request written down, tells the offline services exactly what
to make before the real run starts, e.g. to show preprocessing progress or to separate offline from
online time. Only the counts are used. The dry run computes on the arguments it is given, in this
process: pass stand-ins of the same shapes where the real inputs must not be touched (a program
whose public steps depend on revealed values, e.g. a count that picks a scaling, needs stand-ins
that reveal the same).

    need = await actors.plan.preprocessing_plan(prog, 3, *args)
    # {"triple": 11930, "bit": 28087, "random": 200, "mask0": 160, ...}  (pool names)

This module only records (``PlanRecorder``, an engine interceptor); the dry run needs a cluster of
parties, which is ``actors``' business, and ``protocols`` never imports ``actors``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..net import Net
from .base import Preprocessing

# request method -> the offline service's pool name
POOL_OF = {"triples": "triple", "squares": "square", "bits": "bit", "randoms": "random"}


class RecordingPreprocessing:
    """Passes every request on to ``inner`` and writes it down in ``rec``: its size under the pool's
    name in ``rec.counts`` (input masks under ``mask<owner>``) and, for triples, squares, bits and
    randoms, ``(method, size)`` in order in ``rec.requests``."""

    def __init__(self, inner: Preprocessing, rec: PlanRecorder) -> None:
        self._inner, self._rec = inner, rec
        self.ctx = inner.ctx

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        rec = self._rec
        if name in POOL_OF:

            async def counted(n: int) -> Any:
                rec.counts[POOL_OF[name]] += n
                rec.requests.append((name, n))
                return await attr(n)

            return counted
        if name == "input_masks":

            async def masks(owner: int, n: int) -> Any:
                rec.counts[f"mask{owner}"] += n
                return await attr(owner, n)

            return masks
        return attr


class PlanRecorder:
    """An engine interceptor (see ``actors.engine.Interceptor``) that writes down one party's
    requests, over all its sessions."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.requests: list[tuple[str, int]] = []

    def wrap_net(self, session: str, net: Net) -> Net:
        return net

    def wrap_preprocessing(self, session: str, pre: Preprocessing) -> Preprocessing:
        return RecordingPreprocessing(pre, self)  # type: ignore[return-value]
