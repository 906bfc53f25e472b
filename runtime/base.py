"""What the runtime's modules share and that depends on none of them: the partition error
and the camera image's preprocessing (a leaf module, so that the engines and the partition
reader do not import each other)."""

from __future__ import annotations

import numpy as np

__all__ = ["PartsError", "preprocess"]


class PartsError(ValueError):
    """A partition directory is malformed or asked for something it does not hold."""


def preprocess(image: np.ndarray) -> np.ndarray:
    """The camera image (uint8) as the network's float32 input: ``x / 255``.

    >>> preprocess(np.array([0, 255], dtype=np.uint8)).tolist()
    [0.0, 1.0]
    """
    return image.astype(np.float32) * np.float32(1.0 / 255.0)
