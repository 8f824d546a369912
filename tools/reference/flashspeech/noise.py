"""The seeded standard-normal generator shared with speech/model.c.

splitmix64 over a counter: the k-th draw (k = 1, 2, ...) after a state s is
mix(s + k * 0x9E3779B97F4A7C15), and the state advances by the count drawn.
u = ((x >> 11) + 0.5) / 2^53 lies in (0, 1). Box-Muller in double on pairs
(u1, u2): r = sqrt(-2 ln u1); r cos(2 pi u2), then r sin(2 pi u2); an odd
count drops the last sine. A fill of n values consumes 2 * ceil(n / 2) draws.
"""

import math

import numpy as np

GAMMA = 0x9E3779B97F4A7C15
MASK = (1 << 64) - 1


def _mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


class Generator:
    def __init__(self, seed):
        self.state = seed & MASK

    def _uniform(self):
        self.state = (self.state + GAMMA) & MASK
        return ((_mix(self.state) >> 11) + 0.5) / 9007199254740992.0

    def normal(self, n):
        """n standard-normal values as float32 numpy."""
        out = np.empty(n, dtype=np.float32)
        for i in range(0, n, 2):
            u1 = self._uniform()
            u2 = self._uniform()
            r = math.sqrt(-2.0 * math.log(u1))
            out[i] = r * math.cos(2.0 * math.pi * u2)
            if i + 1 < n:
                out[i + 1] = r * math.sin(2.0 * math.pi * u2)
        return out


def normal(seed, n):
    return Generator(seed).normal(n)
