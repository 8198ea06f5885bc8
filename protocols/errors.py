"""Exceptions users can catch. Every failed check ends the session with an ``AbortError``."""

from __future__ import annotations


class SpdzError(Exception):
    """Base class of every trio-spdz error."""


class AbortError(SpdzError):
    """The session was aborted; no output of it may be trusted or is returned.

    ``culprit`` is the party id that was seen to misbehave or that asked for the abort, when known.
    """

    def __init__(self, reason: str, *, culprit: int | None = None, remote: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.culprit = culprit
        self.remote = remote  # True when we only heard of the abort from a peer


class MacCheckError(AbortError):
    """A MAC check or a broadcast-consistency check failed: some party deviated."""


class CommitmentError(AbortError):
    """A party opened a commitment to a value other than the one it committed to."""


class ProtocolError(AbortError):
    """A peer sent a message that is malformed (type, length, shape or field range)."""


class PeerLostError(AbortError):
    """A peer the session needs is gone: unreachable for longer than ``peer_timeout``, restarted,
    or its link makes no progress. ``culprit`` is that peer."""

    def __init__(self, peer: int, why: str) -> None:
        super().__init__(f"lost party {peer}: {why}", culprit=peer)
        self.peer = peer
        self.why = why


class PeerTimeoutError(AbortError):
    """A peer is connected but sent nothing for a step within the receive timeout."""

    def __init__(self, peer: int, step: int, timeout: float) -> None:
        super().__init__(f"party {peer} sent nothing for step {step} within {timeout:g} s", culprit=peer)
        self.peer = peer
        self.step = step
        self.timeout = timeout


class PreprocessingError(AbortError):
    """Preprocessing material failed its checks or could not be supplied."""


class BudgetExceeded(AbortError):
    """A party refused a differentially private output: its privacy budget for ``dataset`` would be
    exceeded (or it has no budget of that name)."""

    def __init__(self, dataset: str, why: str, *, culprit: int | None = None, remote: bool = False) -> None:
        super().__init__(f"privacy budget of dataset {dataset!r}: {why}", culprit=culprit, remote=remote)
        self.dataset = dataset
        self.why = why


class ConfigError(SpdzError):
    """A configuration file or option is missing, malformed or inconsistent."""


class PeerAuthError(SpdzError):
    """A peer failed authentication (certificate, party id)."""
