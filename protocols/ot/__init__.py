"""Oblivious transfer for MASCOT: base OTs (Chou-Orlandi) and KOS OT extension.

``base``: ``base_ot_send`` / ``base_ot_recv`` -- 128 public-key OTs per ordered pair, once.
``kos``: ``KOSSender`` / ``KOSReceiver`` -- ``setup`` once, then ``extend`` as often as needed, giving
random OTs of 128-bit strings as ``uint64`` arrays of shape ``(m, 2)``.
``extension``: the interface MASCOT uses (``OTExtensionSender`` / ``OTExtensionReceiver``) and the
registry of implementations by name (``lookup("kos")``); a new OT extension registers there.
``bitmatrix``, ``gf128``, ``crhash``: the vectorised building blocks (transpose, GHASH-based check,
fixed-key-AES hash).
"""

from .base import base_ot_recv, base_ot_send
from .extension import OTExtensionReceiver, OTExtensionSender, lookup
from .kos import KOSReceiver, KOSSender, padded_rows

__all__ = [
    "KOSReceiver",
    "KOSSender",
    "OTExtensionReceiver",
    "OTExtensionSender",
    "base_ot_recv",
    "base_ot_send",
    "lookup",
    "padded_rows",
]
