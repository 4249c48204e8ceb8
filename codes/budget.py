"""THE bit budget of RVQ codes: ``nominal_bps``, which the packer, the server, the reports and the tests all call.

It is the fixed-length rate, ``frame_rate * sum(log2 K_s)``. A per-code bit-field packer spends
``packed_bits_per_frame`` (``ceil`` per code) instead; the two agree when every ``K_s`` is a power
of two, and a frame-wise mixed-radix packer can reach the nominal rate for any ``K``. What an entropy
coder spends below the budget: ``acom.codes.priors``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from acom.errors import AcomError

__all__ = ["check_sizes", "nominal_bits_per_frame", "nominal_bps", "packed_bits_per_frame"]


def check_sizes(codebook_sizes: Sequence[int]) -> tuple[int, ...]:
    sizes = tuple(codebook_sizes)
    if not sizes or any(isinstance(k, bool) or int(k) != k or k < 1 for k in sizes):
        raise AcomError(f"codebook_sizes {sizes!r}: expected one or more integers >= 1")
    return tuple(int(k) for k in sizes)


def nominal_bits_per_frame(codebook_sizes: Sequence[int]) -> float:
    """Bits of one frame at fixed length: ``sum(log2 K_s)`` (the information of a uniform code)."""
    return float(sum(math.log2(k) for k in check_sizes(codebook_sizes)))


def packed_bits_per_frame(codebook_sizes: Sequence[int]) -> int:
    """Bits a per-code bit-field packer uses per frame: ``sum(ceil(log2 K_s))``.

    Exceeds ``nominal_bits_per_frame`` when some ``K_s`` is not a power of two (K=1000 -> 10 bits
    against 9.97); computed on integers so K=2**n gives exactly n.
    """
    return sum((k - 1).bit_length() for k in check_sizes(codebook_sizes))


def nominal_bps(frame_rate: float, codebook_sizes: Sequence[int]) -> float:
    """THE bit budget, in bit/s: ``frame_rate * sum(log2 K_s)`` over the stages sent."""
    if not (isinstance(frame_rate, (int, float)) and math.isfinite(frame_rate) and frame_rate > 0):
        raise AcomError(f"frame_rate {frame_rate!r}: expected a finite number of frames/s > 0")
    return float(frame_rate) * nominal_bits_per_frame(codebook_sizes)
