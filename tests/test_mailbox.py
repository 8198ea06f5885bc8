"""Per-session mailboxes and the router: keyed by (sender, step), bounded, and aborted as a whole.

The last tests go through a cluster: a problem the *mailbox* finds (a duplicate message) must end the
session at every honest party, exactly like a problem the protocol code finds.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from helpers import assert_all_aborted

import actors
from actors import mailbox
from actors.frames import ABORT, MSG, encode_frame
from actors.mailbox import MAX_PENDING_SESSIONS, Router, SessionMailbox
from protocols.errors import AbortError, ProtocolError
from protocols.field import P61
from protocols.online import Session


# ---------------------------------------------------------------------------------------- SessionMailbox
async def test_messages_are_matched_by_sender_and_step_not_arrival() -> None:
    box = SessionMailbox("s")
    box.deliver(2, 5, "two-five")
    box.deliver(1, 5, "one-five")
    box.deliver(1, 4, "one-four")
    assert await box.recv(1, 4) == "one-four"
    assert await box.recv(2, 5) == "two-five"
    assert await box.recv(1, 5) == "one-five"


async def test_recv_waits_for_its_message() -> None:
    box = SessionMailbox("s")
    got: list[Any] = []

    async def waiter() -> None:
        got.append(await box.recv(1, 1))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        box.deliver(1, 2, "other step")
        box.deliver(2, 1, "other sender")
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        box.deliver(1, 1, "mine")
    assert got == ["mine"]


async def test_duplicate_sender_and_step_aborts_with_protocol_error() -> None:
    box = SessionMailbox("s")
    box.deliver(1, 3, b"first")
    box.deliver(1, 3, b"second")
    assert isinstance(box.error, ProtocolError)
    assert box.error.culprit == 1
    with pytest.raises(ProtocolError):
        await box.recv(1, 3)
    with pytest.raises(ProtocolError):
        await box.recv(2, 3)


async def test_duplicate_after_the_first_was_consumed_aborts_too() -> None:
    """The module promises that a second message for a key aborts, not only while the first waits."""
    box = SessionMailbox("s")
    box.deliver(1, 3, b"first")
    assert await box.recv(1, 3) == b"first"
    box.deliver(1, 3, b"second")
    assert isinstance(box.error, ProtocolError)


async def test_same_step_from_different_senders_is_fine() -> None:
    box = SessionMailbox("s")
    for j in range(1, 5):
        box.deliver(j, 1, j)
    assert box.error is None
    assert [await box.recv(j, 1) for j in range(1, 5)] == [1, 2, 3, 4]


async def test_abort_wakes_every_waiter() -> None:
    box = SessionMailbox("s")
    err = AbortError("peer gone", culprit=2)
    raised: list[BaseException] = []

    async def waiter(frm: int, step: int) -> None:
        try:
            await box.recv(frm, step)
        except AbortError as e:
            raised.append(e)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            for frm, step in [(1, 1), (2, 1), (1, 7), (2, 9)]:
                nursery.start_soon(waiter, frm, step)
            await trio.testing.wait_all_tasks_blocked()
            box.abort(err)
    assert raised == [err] * 4


async def test_abort_keeps_the_first_error_and_drops_later_messages() -> None:
    box = SessionMailbox("s")
    box.deliver(1, 1, "buffered")
    first = AbortError("first")
    box.abort(first)
    box.abort(AbortError("second"))
    box.deliver(1, 2, "late")
    assert box.error is first
    with pytest.raises(AbortError) as ei:
        await box.recv(1, 1)
    assert ei.value is first


async def test_flooding_a_session_aborts_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mailbox, "MAX_MESSAGES_PER_SESSION", 50)
    box = SessionMailbox("s")
    for step in range(50):
        box.deliver(1, step, b"x")
    assert box.error is None
    box.deliver(1, 50, b"x")
    assert isinstance(box.error, ProtocolError) and box.error.culprit == 1


# ---------------------------------------------------------------------------------------- Router
async def test_messages_for_a_session_not_yet_started_are_kept() -> None:
    r = Router()
    r.deliver(1, "later", 1, "early bird")
    r.deliver(2, "later", 1, "another")
    box = r.open("later")
    assert await box.recv(1, 1) == "early bird"
    assert await box.recv(2, 1) == "another"


async def test_abort_for_a_session_not_yet_started_is_kept() -> None:
    r = Router()
    r.peer_aborted(2, "later", "I quit")
    box = r.open("later")
    with pytest.raises(AbortError) as ei:
        await box.recv(1, 1)
    assert ei.value.culprit == 2 and "I quit" in ei.value.reason


def test_finished_sessions_drop_late_frames_and_cannot_reopen() -> None:
    r = Router()
    r.open("done")
    r.close("done")
    r.deliver(1, "done", 9, "late")
    r.peer_aborted(1, "done", "late abort")
    assert "done" not in r.sessions()
    with pytest.raises(ValueError):
        r.open("done")


def test_a_running_session_cannot_be_opened_twice() -> None:
    r = Router()
    r.open("s")
    with pytest.raises(ValueError):
        r.open("s")


def test_pending_sessions_are_bounded() -> None:
    r = Router()
    for k in range(MAX_PENDING_SESSIONS):
        r.deliver(1, f"p{k}", 1, b"x")
    r.deliver(1, "one-too-many", 1, b"x")
    assert "one-too-many" not in r.sessions()
    assert len(r.sessions()) == MAX_PENDING_SESSIONS
    # started sessions do not count against the bound
    r.open("p0")
    r.deliver(1, "now-fits", 1, b"x")
    assert "now-fits" in r.sessions()


def test_aborted_placeholders_make_room_for_new_sessions() -> None:
    """After an outage peers may abort many sessions we never started; their placeholders must not
    block the frames of a new session. The oldest aborted placeholder goes first, live ones stay, and
    an evicted session id cannot be started later (it was aborted)."""
    r = Router()
    r.deliver(1, "live", 1, b"x")
    for k in range(MAX_PENDING_SESSIONS - 1):
        r.peer_aborted(1, f"dead{k}", "gone")
    r.deliver(2, "new", 1, b"y")
    assert "new" in r.sessions() and "live" in r.sessions() and "dead0" not in r.sessions()
    assert "dead1" in r.sessions()
    with pytest.raises(ValueError):
        r.open("dead0")


def test_a_peer_cannot_make_us_hold_more_than_the_pending_byte_limit() -> None:
    """Data for sessions not started here is bounded per peer over all of them: a session that starts
    takes its held data along; a peer that crosses the bound is named in the abort of every session
    it was filling, nothing of it is kept, and the owner is told to disconnect it. Another peer, and
    sessions already running, are not affected."""
    flooded: list[int] = []
    r = Router(max_pending_bytes=1000)
    r.on_over_limit = flooded.append
    r.deliver(1, "a", 1, b"x" * 600)
    r.deliver(2, "a", 1, b"y" * 900)  # another peer has its own budget
    assert r.pending_bytes(1) == 600 and r.pending_bytes(2) == 900
    r.open("a")  # a session that starts takes its held data along: the budgets are free again
    assert r.pending_bytes(1) == 0 and r.pending_bytes(2) == 0
    r.deliver(1, "a", 2, b"x" * 5000)  # a running session's messages are not pending
    r.deliver(1, "b", 1, b"x" * 600)
    r.deliver(2, "b", 1, b"y" * 600)
    r.deliver(1, "c", 1, b"x" * 300)
    assert not flooded
    r.deliver(1, "d", 1, b"x" * 200)  # 1,100 > 1,000
    assert flooded == [1] and r.pending_bytes(1) == 0
    for sid in ("b", "c", "d"):
        box = r.open(sid)
        assert isinstance(box.error, ProtocolError) and box.error.culprit == 1, sid
        assert "party 1 sent more than 1000 bytes" in str(box.error)
    r.deliver(2, "e", 1, b"y" * 900)  # party 2 was not disconnected: it still has its budget
    assert r.pending_bytes(2) == 900 and flooded == [1]


def test_abort_all() -> None:
    r = Router()
    a, b = r.open("a"), r.open("b")
    r.abort_all(lambda sid: AbortError(f"link down in {sid}"))
    assert a.error is not None and "in a" in a.error.reason
    assert b.error is not None and "in b" in b.error.reason


def test_finished_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mailbox, "FINISHED_MEMORY", 3)
    r = Router()
    for k in range(5):
        r.open(f"s{k}")
        r.close(f"s{k}")
    assert r.finished == ["s2", "s3", "s4"]


# ---------------------------------------------------------------------------------------- through a cluster
async def small_prog(s: Session) -> Any:
    x = await s.input([1, 2] if s.party == 0 else None, owner=0)
    return await s.output(await s.mul(x, x))


@pytest.mark.parametrize("n", [2, 3])
async def test_a_duplicate_frame_ends_the_session_at_every_party(n: int, autojump_clock: Any) -> None:
    """Party 0's mailbox sees a duplicate before its session starts: everybody must abort, nobody hang."""
    async with actors.local_cluster(n, modulus=P61, preprocessing="dealer") as c:
        for _ in range(2):
            c.parties[0].engine.on_frame(n - 1, encode_frame(MSG, "dup", 1, b"junk"))
        with trio.fail_after(60):
            res = await c.run_each(small_prog, session="dup")
    assert isinstance(res[0], ProtocolError), res[0]
    assert_all_aborted(res, range(n))


async def test_a_flood_detected_by_one_mailbox_reaches_the_others(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: Any
) -> None:
    monkeypatch.setattr(mailbox, "MAX_MESSAGES_PER_SESSION", 10)
    async with actors.local_cluster(3, modulus=P61, preprocessing="dealer") as c:
        for step in range(100, 111):
            c.parties[1].engine.on_frame(2, encode_frame(MSG, "flood", step, b""))
        with trio.fail_after(60):
            res = await c.run_each(small_prog, session="flood")
    assert_all_aborted(res, range(3))


async def test_a_peer_abort_sent_to_one_party_reaches_all(autojump_clock: Any) -> None:
    """Party 2 tells only party 1 that it aborts: party 1 must pass it on, or party 0 waits forever."""
    gate = trio.Event()

    async def waits(s: Session) -> Any:
        await gate.wait()
        x = await s.input([1] if s.party == 0 else None, owner=0)
        return await s.output(x)

    async with actors.local_cluster(3, modulus=P61, preprocessing="dealer") as c:
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                out: list[Any] = []

                async def run() -> None:
                    out.append(await c.run_each(waits, session="victim"))

                nursery.start_soon(run)
                await trio.testing.wait_all_tasks_blocked()
                c.parties[1].engine.on_frame(2, encode_frame(ABORT, "victim", 0, "selective abort"))
                gate.set()
    res = out[0]
    assert isinstance(res[1], AbortError) and res[1].culprit == 2
    assert_all_aborted(res, range(2))
