"""Privacy budgets in a session: the declared cost agreed, checked and charged at every party.

Used by the daemon's submitted sessions (``actors.jobs``: the declaration rides in the join round) and
by the embedding API (``Party.run(prog, ..., dp=Declared(...))``: a round of its own), so that both
ways in enforce every party's own ledger the same way. See ``docs/dp.md``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog
import trio

from protocols.dp.accounting import EpsDelta
from protocols.dp.allowance import Allowance, Declared
from protocols.errors import AbortError, BudgetExceeded
from protocols.online import Session

if TYPE_CHECKING:
    from .party import Party

log = structlog.get_logger("spdz.budget")

PAUSE_AFTER_CHARGE_ENV = "SPDZ_TEST_PAUSE_AFTER_CHARGE"
"""Fault injection for the recovery tests only: seconds a party sleeps between committing a charge and
running the program, so that a test can kill it in that window (never set it in production)."""


def shown(dp: Any) -> str:
    """A declaration as an error message shows it (a peer's: truncated, whatever it sent)."""
    if dp is None:
        return "none (an exact output)"
    if not isinstance(dp, dict):
        return "malformed"
    keys = ("dataset", "epsilon", "delta", "mechanism", "bounds")
    return ", ".join(f"{k}={str(dp.get(k))[:40]}" for k in keys)


def check_declaration(j: int, theirs: Any, me: int, mine: dict[str, Any] | None) -> None:
    """``AbortError`` naming party ``j`` and both declarations unless ``theirs`` is ``mine`` (a peer's
    message: anything). Every way in compares declarations with this (``agree_declaration``, and the
    daemon's join round)."""
    if theirs != mine:
        raise AbortError(
            f"party {j} declared the privacy cost {shown(theirs)} for this session, party {me} "
            f"{shown(mine)}: every party must run it with the same declaration (dataset, epsilon, "
            "delta, mechanism, bounds)",
            culprit=j,
        )


async def _exchange(s: Session, msg: dict[str, Any], timeout: float, what: str) -> dict[int, Any]:
    """Send ``msg`` to every peer and take each peer's message of this step, all within ``timeout``
    seconds (``AbortError`` naming the first party that did not answer)."""
    step = s.next_step()
    peers = [j for j in range(s.n) if j != s.party]
    for j in peers:
        await s.net.send(j, step, msg)
    deadline = trio.current_time() + timeout
    got: dict[int, Any] = {}
    for j in peers:
        with trio.move_on_at(deadline):
            got[j] = await s.net.recv(j, step)
            continue
        raise AbortError(f"party {j} did not answer the {what} within {timeout:g} s", culprit=j)
    return got


async def agree_declaration(s: Session, declared: Declared, timeout: float) -> None:
    """One round in which every party sends its declaration and compares everyone's
    (``check_declaration``): the embedding API's join; the daemon's submitted sessions compare it in
    their join round."""
    mine = declared.describe()
    for j, msg in (await _exchange(s, {"dp": mine}, timeout, "declaration round")).items():
        check_declaration(j, msg.get("dp") if isinstance(msg, dict) else "malformed", s.party, mine)


async def _verdicts(s: Session, verdict: str, timeout: float, what: str) -> list[int]:
    """Send this party's ``ok``/``refused`` to every peer and collect theirs: the refusing parties."""
    refused = [s.party] if verdict == "refused" else []
    for j, msg in (await _exchange(s, {"budget": verdict}, timeout, what)).items():
        if not isinstance(msg, dict) or msg.get("budget") not in ("ok", "refused"):
            raise AbortError(f"party {j} sent a malformed budget verdict", culprit=j)
        if msg["budget"] == "refused":
            refused.append(j)
    if refused:
        # everybody will abort: first make sure everybody has every verdict (an acknowledgement
        # round), so that a party still waiting for one does not hear of the abort before its reason;
        # an abort or a silent peer now changes nothing, the outcome is known
        with trio.move_on_after(timeout):
            try:
                await _exchange(s, {"budget": "seen"}, timeout, "acknowledgement")
            except AbortError:
                pass
    return sorted(refused)


async def charge_session(
    s: Session,
    party: Party,
    declared: Declared,
    timeout: float,
    on_charged: Callable[[dict[str, Any]], None] | None = None,
) -> float | None:
    """The two rounds after the join of a session with a declared privacy cost. Returns this party's
    total epsilon for the dataset after its charge, and leaves ``s.privacy`` an ``Allowance`` for the
    declaration, which every noisy output of the session then spends from.

    1. *Check*: every party asks its own ledger whether the cost fits (nothing written) and tells
       every other. A refusal anywhere: ``BudgetExceeded`` at every party alike, and nobody has paid
       (one party's exhausted or missing budget costs the others nothing).
    2. *Charge*: every party charges its own ledger, committed before it says so, and waits for every
       other's word. A refusal now (a concurrent session took the rest in between) aborts as well, but
       the parties that charged keep their charges: charges are never refunded, the conservative side,
       as for a session that aborts later (its outputs may have been opened).

    Nobody raises before hearing everyone, so every party aborts with the reason, not with a bare
    "party j aborted". ``BudgetExceeded`` names the dataset and the refusing parties.
    """
    cost = [EpsDelta(declared.epsilon, declared.delta)]
    dataset = declared.dataset
    ledger = party.ledger

    async def ask(op: str) -> tuple[str, str, float | None]:
        try:
            if ledger is None:
                raise BudgetExceeded(dataset, f"party {s.party} has no privacy budget ledger")
            async with party.ledger_lock:  # one call at a time through the party's connection
                if op == "check":
                    got = await trio.to_thread.run_sync(ledger.check, dataset, cost)
                else:
                    got = await trio.to_thread.run_sync(ledger.charge, dataset, s.session_id, cost)
                    if on_charged is not None:
                        on_charged(await trio.to_thread.run_sync(ledger.status))
            return "ok", "", got
        except BudgetExceeded as e:
            return "refused", e.why, None

    spent = None
    for op, what in (("check", "budget check"), ("charge", "budget charge")):
        verdict, why, spent = await ask(op)
        refused = await _verdicts(s, verdict, timeout, what)
        if refused:
            who = ", ".join(map(str, refused))
            mine = f" (here: {why})" if s.party in refused else ""
            when = "" if op == "check" else " after the check (a concurrent session spent the rest)"
            raise BudgetExceeded(
                dataset,
                f"party {who} refused this session's cost, epsilon {declared.epsilon:g} at delta "
                f"{declared.delta:g}{when}{mine}",
            )
    log.info("budget_charged", party=s.party, session=s.session_id, dataset=dataset, spent=spent)
    pause = os.environ.get(PAUSE_AFTER_CHARGE_ENV)
    if pause:
        await trio.sleep(float(pause))
    s.privacy = Allowance(declared)
    return spent
