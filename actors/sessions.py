"""Session ids: which part of a party runs a session is in its id's prefix.

* ``mascot/<epoch>/...``: the offline service's sessions (``actors.offline``): ``setup``, the batch
  numbers, ``lifeline``;
* ``job/<id>``: a session submitted to a daemon with ``spdz submit --session <id>``;
* ``auto/<program>/<k>``: the k-th submit of ``program`` without a session id;
* anything else (``s-<hex>`` by default): sessions run through the Python API.
"""

from __future__ import annotations

MASCOT_PREFIX = "mascot/"
JOB_PREFIX = "job/"
AUTO_PREFIX = "auto/"


def mascot_session(epoch: str, part: str | int) -> str:
    """The id of an offline session of key epoch ``epoch``: ``setup``, ``lifeline`` or a batch number."""
    return f"{MASCOT_PREFIX}{epoch}/{part}"


def is_offline(session: str) -> bool:
    return session.startswith(MASCOT_PREFIX)


def is_submitted(session: str) -> bool:
    """A session submitted through a daemon's control socket (with or without an id)."""
    return session.startswith((JOB_PREFIX, AUTO_PREFIX))
