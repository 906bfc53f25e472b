"""The simulator's counter-based random-number generator (numpy).

Every random number of a slot is a pure function of the environment's key, its slot counter,
a stream id and the element's index: one splitmix64 finaliser round of
``mixed_key + (t + 1) * K_TIME + GOLDEN + stream * K_STREAM + index * K_INDEX`` (mod 2^64).
It therefore depends on nothing else, so a batch of environments reproduces exactly the same
environments stepped one by one, whatever the batch size or their position in it, with no
Python loop over environments and no global random state.

A 64-bit word gives two 32-bit uniforms (:func:`halves`, low half first) or one 53-bit uniform
(:func:`uniform53`). The compiled step (:mod:`edgesplit.sim.kernel`) uses the same constants
and its own scalar twin of :func:`finalise`.

>>> import numpy as np
>>> key = splitmix(np.array([7], dtype=np.uint64))
>>> w = finalise(slot_base(key, np.array([0]))[:, None] + offsets(STREAM_SLOT, np.arange(3)))
>>> w.shape, bool((halves(w) < 1.0).all())
((1, 3), True)
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "GOLDEN",
    "K_INDEX",
    "K_STREAM",
    "K_TIME",
    "LO32",
    "M1",
    "M2",
    "STREAM_CHARGE",
    "STREAM_LINK_RESET",
    "STREAM_PHASE",
    "STREAM_SLOT",
    "U32",
    "U53",
    "finalise",
    "halves",
    "offsets",
    "slot_base",
    "splitmix",
    "uniform53",
]

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)
K_TIME = np.uint64(0xD6E8FEB86659FD93)
K_STREAM = np.uint64(0xA0761D6478BD642F)
K_INDEX = np.uint64(0xE7037ED1A0B428DB)
U32 = 1.0 / 4294967296.0  # a 32-bit integer to [0, 1)
U53 = 1.0 / 9007199254740992.0  # a 53-bit integer to [0, 1)
LO32 = np.uint64(0xFFFFFFFF)
_S30, _S27, _S31, _S11 = (np.uint64(k) for k in (30, 27, 31, 11))

#: stream ids: a slot's arrivals and link steps; the links' initial states at reset; the
#: arrival bursts' phases; the batteries' initial charges at reset
STREAM_SLOT, STREAM_LINK_RESET, STREAM_PHASE, STREAM_CHARGE = 1, 200, 300, 400


def splitmix(z: np.ndarray) -> np.ndarray:
    """splitmix64 (increment and finaliser) of ``z``: how a seed key is mixed once."""
    z = z + GOLDEN
    z = (z ^ (z >> _S30)) * M1
    z = (z ^ (z >> _S27)) * M2
    return z ^ (z >> _S31)


def finalise(z: np.ndarray) -> np.ndarray:
    """splitmix64's output function, in place on a uint64 array (returned)."""
    z ^= z >> _S30
    z *= M1
    z ^= z >> _S27
    z *= M2
    z ^= z >> _S31
    return z


def offsets(stream: int, idx: np.ndarray) -> np.ndarray:
    """Per-element part of the generator's input for ``stream`` at element indices ``idx``."""
    with np.errstate(over="ignore"):
        return (
            GOLDEN
            + np.uint64((stream * int(K_STREAM)) % 2**64)
            + np.asarray(idx, dtype=np.uint64) * K_INDEX
        )


def slot_base(mixed_key: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``[E]`` per-environment part of the generator's input at slots ``t``."""
    return mixed_key + (np.asarray(t) + 1).astype(np.uint64) * K_TIME


def halves(words: np.ndarray) -> np.ndarray:
    """Two uniforms in [0, 1) (32 bits each, low half first) per 64-bit word, ``[E, 2W]``."""
    return words.astype("<u8", copy=False).view("<u4") * U32


def uniform53(words: np.ndarray) -> np.ndarray:
    """One uniform in [0, 1) (the top 53 bits) per 64-bit word."""
    return (words >> _S11).astype(np.float64) * U53
