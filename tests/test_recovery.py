"""Recovery of real daemon processes from outages and strays (the [hardening] issue).

Each test starts its own small cluster of ``spdz party`` processes over loopback TLS (helpers from
``test_daemon``) with a short ``peer_timeout``, breaks it the way an operator or an attacker would
(kill -9 and a restart after the peers gave up, ...), and asserts that the cluster serves correct
results again within a bound.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from test_daemon import START_TIMEOUT, Daemons, wait_until

PEER_TIMEOUT = 3.0


def all_ready(d: Daemons) -> bool:
    return all(d.procs[i] is not None and d.status(i)["pool"]["ready"] for i in range(d.n))


@pytest.mark.parametrize("who", [0, 1])
def test_a_mascot_cluster_is_ready_again_after_a_party_was_down_longer_than_peer_timeout(
    tmp_path: Path, who: int
) -> None:
    """Party ``who`` (the leader, or a follower) is killed (-9), stays down three times
    ``peer_timeout`` while the others give up on it and retire their key, and is restarted: the
    cluster agrees on a new key epoch and serves. (Key epochs used to be counted per process: the
    restarted party began at 0 while the others were several epochs on, and their set-ups never
    met again.)"""
    d = Daemons(tmp_path / "outage", 3, config={"peer_timeout": PEER_TIMEOUT, "idle_timeout": 6.0})
    try:
        d.start()
        d.wait_preprocessing()
        before = d.status(0)["pool"]["epoch"]
        assert [r["result"] for r in d.sum_all("before", [[1], [2], [3]])] == [6] * 3
        d.kill(who)
        others = [i for i in range(3) if i != who]
        wait_until(
            f"the others to give up on party {who} and retire their key",
            lambda: all(d.status(i)["pool"]["epoch"] != before for i in others),
            START_TIMEOUT,
            d.logs,
        )
        time.sleep(2 * PEER_TIMEOUT)
        t0 = time.monotonic()
        d.start([who])
        wait_until("the whole cluster's preprocessing", lambda: all_ready(d), START_TIMEOUT, d.logs)
        recovered = time.monotonic() - t0
        epochs = {d.status(i)["pool"]["epoch"] for i in range(3)}
        assert len(epochs) == 1 and before not in epochs, epochs
        assert [r["result"] for r in d.sum_all("after", [[4], [5], [6]])] == [15] * 3
        print(f"ready {recovered:.1f} s after the restart")
    finally:
        d.close()
