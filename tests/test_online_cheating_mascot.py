"""Online cheating with MASCOT preprocessing: the cases where the preprocessing source matters.

``test_online_cheating`` runs every attack against the test dealer. Here the attacks that touch preprocessing
(a tampered value or MAC share of a MASCOT triple or input mask), a wrong opened share, and the no-op
control run again with the real offline phase, at n = 2 and 3 with the first and the last party
cheating. Real clock (MASCOT computes in worker threads, which the autojump clock would skip past)
under the cluster deadline of ``helpers``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import helpers
import pytest
import test_online_cheating as tc
from helpers import MODULI, mod_id

pytestmark = pytest.mark.slow  # real processes or MASCOT: left out of the fast subset

CASES = [(n, c) for n in (2, 3) for c in (0, n - 1)]
param_case = pytest.mark.parametrize(("n", "cheater"), CASES, ids=[f"n{n}-cheater{c}" for n, c in CASES])
param_p = pytest.mark.parametrize("p", MODULI, ids=mod_id)
TARGETS = [("triple", 0, 0), ("triple", 1, 0), ("triple", 2, 0), ("mask", 0, 0), ("mask", 0, 2)]
param_target = pytest.mark.parametrize(
    ("kind", "which", "call"),
    TARGETS,
    ids=["triple-a", "triple-b", "triple-c", "mask-input", "mask-output"],
)


@pytest.fixture(autouse=True)
def _use_mascot() -> Iterator[None]:
    with helpers.using("mascot"):
        yield


@param_case
@param_p
async def test_noop_wrappers_compute_correctly(n: int, cheater: int, p: int) -> None:
    await tc.test_noop_wrappers_compute_correctly(n, cheater, p, None)


@param_case
@param_p
async def test_delta_on_an_opened_share(n: int, cheater: int, p: int) -> None:
    await tc.test_delta_on_an_opened_share(n, cheater, p, 0, None)


@param_case
@param_p
@param_target
async def test_tampered_mac_share(n: int, cheater: int, p: int, kind: str, which: int, call: int) -> None:
    await tc.test_tampered_mac_share(n, cheater, p, kind, which, call, None)


@param_case
@param_p
@param_target
async def test_tampered_value_share(n: int, cheater: int, p: int, kind: str, which: int, call: int) -> None:
    await tc.test_tampered_value_share(n, cheater, p, kind, which, call, None)


async def test_the_dealer_is_not_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    """The switch above really selects MASCOT (else this file would re-test the dealer)."""
    import helpers

    assert helpers.cluster_options()["preprocessing"] == "mascot"
    _: Any = monkeypatch
