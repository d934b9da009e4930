"""Independent random streams from one user seed.

Every stream in the suite (start points, noise channels, Brownian paths, exact reference
samples, …) is a ``torch.Generator`` seeded by :func:`derive_seed` — all but the data of the
catalogue's random problems, which is torch's stream ``seed`` itself, so that a seed names the
same data set in every version — NumPy's
``SeedSequence`` hashes the user seed together with a key that names the stream's purpose
(O'Neill 2015; NumPy's recommended way to spawn streams). Distinct (seed, key) pairs give
unrelated 64-bit seeds, so seed 0's second stream is not seed 1's first (as ``seed + k`` or
``seed · 7919 + channel`` would make it), and every seed in [0, 2⁶⁴) works.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

MAX_SEED = 2**64 - 1
"""torch.Generator.manual_seed's largest seed (data streams are seeded with the seed itself)."""


def check_seed(seed) -> int:
    """``seed`` as a Python int; a ValueError naming it unless it is an integer in [0, 2⁶⁴)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be an integer >= 0 and < 2**64, got {seed!r}")
    return int(seed)


def _key_word(key: int | str) -> int:
    if isinstance(key, str):
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")
    return check_seed(key)


def derive_seed(seed: int, *key: int | str) -> int:
    """A 64-bit seed for the stream ``key`` (strings and integers ≥ 0) of the user seed ``seed``."""
    sequence = np.random.SeedSequence(check_seed(seed), spawn_key=tuple(_key_word(k) for k in key))
    low, high = sequence.generate_state(2, dtype=np.uint32)
    return int(high) << 32 | int(low)


def generator(seed: int, *key: int | str, device="cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` for the stream ``key`` of ``seed``."""
    return torch.Generator(device=device).manual_seed(derive_seed(seed, *key))
