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
    # binary material too: {"and_triple": 57000, "dabit": 1000, "edabit:32": 1000, ...}

This module only records (``PlanRecorder``, an engine interceptor); the dry run needs a cluster of
parties, which is ``actors``' business, and ``protocols`` never imports ``actors``.
"""

from __future__ import annotations

from collections import Counter

from ..intercept import Forwarding, PassThrough
from . import mixed
from .base import Preprocessing

# request method -> the offline service's pool name
POOL_OF = {"triples": "triple", "squares": "square", "bits": "bit", "randoms": "random"}


class RecordingPreprocessing(Forwarding):
    """Passes every request on to ``inner`` and writes it down in ``rec``: its size under the pool's
    name in ``rec.counts`` (input masks under ``mask<owner>``, binary material under its pool kind,
    ``mixed.py``: ``and_triple``, ``dabit``, ``edabit:<k>``) and, for triples, squares, bits and
    randoms, ``(method, size)`` in order in ``rec.requests``."""

    def __init__(self, inner: Preprocessing, rec: PlanRecorder) -> None:
        super().__init__(inner)
        self._rec = rec

    def drawn(self, kind: str, n: int, owner: int | None = None) -> None:
        if kind == "input_masks":
            self._rec.counts[f"mask{owner}"] += n
        elif kind in mixed.BY_METHOD:
            binary = mixed.BY_METHOD[kind]
            self._rec.counts[binary.name(owner or 0)] += n
        else:
            self._rec.counts[POOL_OF[kind]] += n
            self._rec.requests.append((kind, n))


class PlanRecorder(PassThrough):
    """An engine interceptor (see ``protocols.intercept.Interceptor``) that writes down one party's
    requests, over all its sessions."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.requests: list[tuple[str, int]] = []

    def wrap_preprocessing(self, session: str, pre: Preprocessing) -> Preprocessing:
        return RecordingPreprocessing(pre, self)  # type: ignore[return-value]
