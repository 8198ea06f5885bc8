"""Oblivious transfer for MASCOT: base OTs (Chou-Orlandi) and KOS OT extension.

``base``: ``base_ot_send`` / ``base_ot_recv`` -- 128 public-key OTs per ordered pair, once.
``kos``: ``KOSSender`` / ``KOSReceiver`` -- ``setup`` once, then ``extend`` as often as needed, giving
random OTs of 128-bit strings as ``uint64`` arrays of shape ``(m, 2)``.
``bitmatrix``, ``gf128``, ``crhash``: the vectorised building blocks (transpose, GHASH-based check,
fixed-key-AES hash).
"""

from .base import base_ot_recv, base_ot_send
from .kos import KOSReceiver, KOSSender, padded_rows

__all__ = ["KOSReceiver", "KOSSender", "base_ot_recv", "base_ot_send", "padded_rows"]
