"""Link helpers. Collectives (ring, tree, all-to-all) are built from these transfers in the
simulator, so contention comes from the event simulation, not from a formula here."""
from __future__ import annotations

from .specs import HardwareError, LinkSpec


def transfer_time_s(link: LinkSpec, nbytes: float) -> float:
    """One message of nbytes over an uncontended link: latency_s + nbytes / bandwidth_Bps."""
    if isinstance(nbytes, bool) or not isinstance(nbytes, (int, float)) or not nbytes >= 0:
        raise HardwareError(f"link {link.name!r}: transfer size must be a number >= 0 bytes, "
                            f"got {nbytes!r}")
    return link.latency_s + nbytes / link.bandwidth_Bps
