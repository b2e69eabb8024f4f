"""Devices that are not all alike: per-device speed and seeded per-op jitter.

speed   a device's compute speed relative to its model (1: as modelled, 0.8: every op takes
        1/0.8 times as long). Thermal throttling, a slower bin, a noisy neighbour.
jitter  each compute op's time is multiplied by a factor drawn from a distribution with mean 1:
          lognormal    exp(spread * Z - spread^2 / 2), Z standard normal; spread >= 0 is the
                       standard deviation of the log (0.05: about 5% op to op)
          uniform      1 + spread * (2U - 1), U uniform on [0, 1); 0 <= spread < 1
          exponential  (1 - spread) + spread * E, E exponential with mean 1 (a floor and a
                       tail of delays); 0 <= spread <= 1
        The draw for an op is a function of (seed, device, task name) alone, through a
        cryptographic hash, so the same seed gives the same times byte for byte, whatever
        the order tasks are built in, the process or PYTHONHASHSEED.
"""
from __future__ import annotations

import hashlib
import math
import statistics
from dataclasses import dataclass

from .tasks import SimulationError

DISTRIBUTIONS = ("lognormal", "uniform", "exponential")
_NORMAL = statistics.NormalDist()


@dataclass(frozen=True)
class Jitter:
    distribution: str = "lognormal"
    spread: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        if self.distribution not in DISTRIBUTIONS:
            raise SimulationError(f"unknown jitter distribution {self.distribution!r}; known: "
                                  f"{', '.join(DISTRIBUTIONS)}")
        s = self.spread
        # lognormal: exp(s * Z - s^2 / 2) needs s^2 finite, else every factor is NaN
        top = {"lognormal": 1e154, "uniform": 1.0, "exponential": 1.0}[self.distribution]
        ok = not isinstance(s, bool) and isinstance(s, (int, float)) and 0 <= s < math.inf and \
            (s < top if self.distribution == "uniform" else s <= top)
        if not ok:
            bound = {"lognormal": "a finite number >= 0 (at most 1e154)", "uniform": "in [0, 1)",
                     "exponential": "in [0, 1]"}[self.distribution]
            raise SimulationError(f"{self.distribution} jitter: spread must be {bound}, "
                                  f"got {s!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise SimulationError(f"jitter seed must be an integer, got {self.seed!r}")

    @classmethod
    def parse(cls, text: str, seed: int = 0) -> "Jitter":
        """'lognormal:0.05' (distribution:spread), as the command line gives it."""
        name, sep, spread = text.partition(":")
        try:
            value = float(spread)
        except ValueError:
            raise SimulationError(f"jitter {text!r} must be DISTRIBUTION:SPREAD, e.g. "
                                  f"lognormal:0.05") from None
        if not sep:
            raise SimulationError(f"jitter {text!r} must be DISTRIBUTION:SPREAD, e.g. "
                                  f"lognormal:0.05")
        return cls(name, value, seed)

    def factor(self, device: str, task: str) -> float:
        """The multiplier of one op's time (mean 1 over many ops)."""
        digest = hashlib.blake2b(f"{self.seed}\0{device}\0{task}".encode(),
                                 digest_size=8).digest()
        u = (int.from_bytes(digest, "big") + 0.5) / 2 ** 64     # in (0, 1)
        s = self.spread
        if self.distribution == "lognormal":
            return math.exp(s * _NORMAL.inv_cdf(u) - s * s / 2)
        if self.distribution == "uniform":
            return 1 + s * (2 * u - 1)
        return (1 - s) + s * -math.log(1 - u)


# A device a thousand times slower or faster than its model is as far as a straggler goes; past
# that a speed is a slip (1e-300 made a step of 1e296 s).
MIN_SPEED, MAX_SPEED = 1e-3, 1e3


def check_speeds(speeds: dict[str, float], device_ids: list[str]) -> None:
    known = set(device_ids)
    for dev, speed in speeds.items():
        if dev not in known:
            raise SimulationError(f"speed given for {dev!r}, which is not a device of the "
                                  f"cluster ({device_ids[0]} to {device_ids[-1]})")
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or \
                not MIN_SPEED <= speed <= MAX_SPEED:
            raise SimulationError(f"speed of {dev!r} must be a number from {MIN_SPEED:g} to "
                                  f"{MAX_SPEED:g} (1: as modelled, 0.5: half as fast), got "
                                  f"{speed!r}")


def wait_for_slowest(log) -> dict:
    """What a synchronous step loses to its slowest rank, to first order: each simulated
    device's compute time in the step (its compute tasks' durations), and how much longer
    the slowest device computed than the median one (the median rank idles that long at
    the collectives that wait for the slowest)."""
    busy: dict[str, float] = {}
    for t in log.tasks:
        if t.category == "compute" and t.device is not None:
            busy[t.device] = busy.get(t.device, 0.0) + t.duration_s
    if len(busy) < 2:
        return {}
    slowest = max(sorted(busy), key=lambda d: busy[d])
    median = statistics.median(busy.values())
    return {"slowest_device": slowest, "slowest_compute_s": busy[slowest],
            "median_compute_s": median, "wait_for_slowest_s": busy[slowest] - median}
