"""netsim: the same actors over a simulated network that injects faults, in virtual time, from a seed.

``Network`` hands out trio streams between numbered parties (``dial``/``listen``, or ``connect``) with
per-link latency, jitter, bandwidth and flow control, and injects faults: resets, stalls, partitions,
corruption, truncation, half-open links, crashes. ``FaultProfile`` is a link's shape and fault rates, with
a spec language for the CLI (``FaultProfile.parse("flaky,latency=20ms")``) and named ``PROFILES``.
Every injected fault is in ``Network.events``; the same seed gives the same events.
"""

from .events import ConnId, FaultEvent
from .network import INJECTABLE, Network, SimListener
from .profile import DEFAULT_WINDOW, PROFILE_SPECS, PROFILES, FaultProfile, FaultSpecError
from .streams import CHUNK_FAULTS, SimStream

__all__ = [
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
