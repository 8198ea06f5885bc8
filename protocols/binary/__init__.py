"""Binary authenticated values: bits with XOR shares and MACs in GF(2^128) under a global key.

The foundation for daBits/edaBits (mixed arithmetic/binary circuits): comparisons at the cost of
binary AND triples instead of 127-bit field triples per bit. ``docs/bits.md`` has the design, the
parameters and the measured costs.

* ``bits``: ``BinaryContext`` (a party's key share Delta_i) and ``AuthBits`` (a vector of shared bits
  with MAC shares; XOR, NOT, XOR/AND with public bits, all local);
* ``auth``: bit authentication from correlated OT (KOS with Delta_i as every sender's correlation);
* ``check``: opening, and one batched check for openings, authentications and the leaky-AND relation;
* ``triples``: leaky AND triples, their check, and bucketing at statistical security 40;
* ``party``: ``BinaryParty``, the long-lived key and OT ends (set up once per party set);
* ``session``: ``BitSession``, the binary side of one ``Session`` (what programs call).
"""

from .bits import AuthBits, BinaryContext
from .party import BinaryParty
from .session import BitSession
from .triples import bucket_size

__all__ = ["AuthBits", "BinaryContext", "BinaryParty", "BitSession", "bucket_size"]
