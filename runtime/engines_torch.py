"""Heads and tails on torch eager (one thread): the engine the shipped profiles measured.

The network is rebuilt from the partition's ``source`` factory, its weights loaded from
``weights.npz`` (checked against the manifest's sha256), and cut with
:class:`edgesplit.runtime.split.Splitter`, so a head runs exactly the modules, in the same
order, that the profiler timed node by node.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from edgesplit.cost_models.profile import load_factory

from .base import PartsError, preprocess
from .split import Splitter, load_state_arrays

if TYPE_CHECKING:
    from .parts import Partitions

__all__ = ["TorchEngine"]


class TorchEngine:
    """``head(name, image)`` and ``tail(name, tensors)`` as :class:`~.parts.OrtEngine`,
    on torch eager under ``inference_mode``.

    Parameters
    ----------
    parts
        The loaded partition directory.
    threads
        Intra-op threads (default 1: the shipped profiles' setting). This sets torch's
        process-wide thread count.
    """

    kind = "torch"

    def __init__(self, parts: Partitions, threads: int = 1) -> None:
        torch.set_num_threads(threads)
        self.parts = parts
        factory, _ = load_factory(parts.manifest["source"])
        module = factory().eval()
        wfile = parts.root / parts.manifest["weights"]["file"]
        if hashlib.sha256(wfile.read_bytes()).hexdigest() != parts.manifest["weights"]["sha256"]:
            raise PartsError(f"{wfile}: sha256 differs from the manifest's")
        with np.load(wfile, allow_pickle=False) as arrays:
            load_state_arrays(module, arrays)
        self._splitter = Splitter(module, parts.input_shape)
        n = len(self._splitter.traced.candidates)
        if n != parts.manifest["n_candidates"]:
            raise PartsError(
                f"{parts.root}: the rebuilt network has {n} candidates, the manifest "
                f"{parts.manifest['n_candidates']}"
            )
        self._split: dict[str, tuple[Any, Any]] = {}

    def _pair(self, name: str) -> tuple[Any, Any]:
        if name not in self._split:
            c = self.parts.candidate(name)
            self._split[name] = self._splitter.split(c.index)
        return self._split[name]

    def warm(self, name: str) -> None:
        """Build head and tail of candidate ``name`` ahead of the first task."""
        self._pair(name)

    def head(self, name: str, image: np.ndarray) -> list[np.ndarray]:
        """Cut tensors (float32 numpy, cut order) of candidate ``name`` for a uint8 image."""
        c = self.parts.candidate(name)
        if c.kind == "input":
            return [image]
        head, _ = self._pair(name)
        with torch.inference_mode():
            out = head(torch.from_numpy(preprocess(image)))
        return [t.numpy() for t in out]

    def tail(self, name: str, tensors: Sequence[np.ndarray]) -> np.ndarray:
        """The network's first output from the cut tensors of candidate ``name``."""
        c = self.parts.candidate(name)
        if c.kind == "output":
            return np.asarray(tensors[0])
        _, tail = self._pair(name)
        xs = [
            torch.from_numpy(preprocess(x) if c.kind == "input" else np.ascontiguousarray(x))
            for x in tensors
        ]
        with torch.inference_mode():
            out = tail(*xs)
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.numpy()
