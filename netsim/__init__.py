"""netsim: the same actors over a simulated network that injects faults, in virtual time, from a seed.

``Network`` hands out trio streams between numbered parties (``dial``/``listen``, or ``connect``) with
per-link latency, jitter, bandwidth and flow control, and injects faults: resets, stalls, partitions,
corruption, truncation, half-open links, crashes. ``FaultProfile`` is a link's shape and fault rates, with
a spec language for the CLI (``FaultProfile.parse("flaky,latency=20ms")``) and named ``PROFILES``.
Every injected fault is in ``Network.events``; the same seed gives the same events.

On top of the streams: ``SimTransport`` runs the real ``StreamLinks``/``PeerLink`` (and TLS) over them,
``adversaries`` is the catalogue of malicious-party strategies and their interception interface, and
``simulate`` / ``sweep`` run seeded simulations of the real parties in virtual time and report how each
ended (``spdz simulate`` is their command line).
"""

from .adversaries import ADVERSARIES, SWEEP, Adversary, AttackContext, NotApplicable, make_adversary
from .events import ConnId, FaultEvent
from .network import INJECTABLE, Network, SimListener
from .profile import DEFAULT_WINDOW, PROFILE_SPECS, PROFILES, FaultProfile, FaultSpecError
from .programs import PROGRAMS, SimProgram
from .runner import (
    FAILURES,
    OUTCOMES,
    SIM_PROFILES,
    SWEEP_PROFILES,
    PartyOutcome,
    Report,
    fault_profile,
    simulate,
    summary_table,
    sweep,
)
from .streams import CHUNK_FAULTS, SimStream
from .transport import LinkHooks, SimLinks, SimTls, SimTransport

__all__ = [
    "ADVERSARIES",
    "FAILURES",
    "OUTCOMES",
    "PROGRAMS",
    "SIM_PROFILES",
    "SWEEP",
    "SWEEP_PROFILES",
    "Adversary",
    "AttackContext",
    "LinkHooks",
    "NotApplicable",
    "PartyOutcome",
    "Report",
    "SimLinks",
    "SimProgram",
    "SimTls",
    "SimTransport",
    "fault_profile",
    "make_adversary",
    "simulate",
    "summary_table",
    "sweep",
    "CHUNK_FAULTS",
    "DEFAULT_WINDOW",
    "INJECTABLE",
    "PROFILES",
    "PROFILE_SPECS",
    "ConnId",
    "FaultEvent",
    "FaultProfile",
    "FaultSpecError",
    "Network",
    "SimListener",
    "SimStream",
]
