"""Read a partition directory (``parts.json``) and run its heads and tails (no torch needed).

Manifest (``parts.json``, written by :mod:`edgesplit.runtime.partition`)::

    {
      "format": "edgesplit.partitions", "format_version": 1,
      "network": "resnet18",                         # the profile's name
      "source": "edgesplit.cost_models.zoo:resnet18", # factory the torch engine rebuilds
      "input": {"name": "input", "shape": [1, 3, 224, 224], "dtype": "uint8"},
      "output": [{"name": "output", "shape": [1, 1000], "dtype": "float32"}],
      "weights": {"file": "weights.npz", "sha256": "..."},
      "n_candidates": 70,                            # all prefix candidates of the graph
      "candidates": [                                # the exported ones
        {"index": 5, "name": "layer1_0_conv1", "kind": "intermediate", "n_head": 5,
         "cut": [{"name": "maxpool", "shape": [1, 64, 56, 56], "dtype": "float32"},
                 {"name": "layer1_0_conv1", "shape": [1, 64, 56, 56], "dtype": "float32"}],
         "head": {"file": "head_005.onnx", "sha256": "..."},   # null for index 0
         "tail": {"file": "tail_005.onnx", "sha256": "..."}},  # null for the last
        ...
      ]
    }

**The input is a camera image as uint8** (what the simulator counts for candidate 0: one
byte per element). The network itself takes float32: :func:`preprocess` (``x / 255``) runs
before the first node, on the device (candidates ``>= 1``) or on the server (candidate 0).

Engines: ``"torch"`` rebuilds the network from ``source`` and ``weights.npz`` and cuts it
with :class:`edgesplit.runtime.split.Splitter` (torch eager, one thread: the engine the
shipped profiles measured); ``"onnxruntime"`` runs the ONNX files (one intra-op thread,
full graph optimisation; imports no torch).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .base import PartsError, preprocess

__all__ = [
    "ENGINES",
    "FORMAT",
    "FORMAT_VERSION",
    "INPUT_DTYPE",
    "MANIFEST",
    "WIRE_BYTES",
    "CutTensor",
    "PartCandidate",
    "Partitions",
    "PartsError",
    "load_parts",
    "preprocess",
]

FORMAT = "edgesplit.partitions"
FORMAT_VERSION = 1
MANIFEST = "parts.json"
INPUT_DTYPE = "uint8"
WIRE_BYTES = {"float32": 4.0, "float16": 2.0, "int8": 1.0}
"""Bytes per element of an intermediate tensor at each wire precision (as the simulator)."""
ENGINES = ("torch", "onnxruntime")


@dataclass(frozen=True)
class CutTensor:
    """One tensor that crosses a cut: its name, shape and (float) dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def numel(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass(frozen=True)
class PartCandidate:
    """An exported candidate: profile ``index``, ``name``, ``kind``, the cut, the files."""

    index: int
    name: str
    kind: str
    n_head: int
    cut: tuple[CutTensor, ...]
    head_file: str | None
    tail_file: str | None


class Partitions:
    """A loaded partition directory (use :func:`load_parts`).

    Attributes
    ----------
    root
        The directory.
    manifest
        The decoded ``parts.json``.
    network
        Network (profile) name.
    input_shape
        Shape of the uint8 input image.
    candidates
        Candidate name -> :class:`PartCandidate`, in profile order.
    """

    def __init__(self, root: Path, manifest: dict[str, Any]) -> None:
        self.root = root
        self.manifest = manifest
        self.network: str = manifest["network"]
        self.input_shape = tuple(int(s) for s in manifest["input"]["shape"])
        self.output_shapes = [tuple(o["shape"]) for o in manifest["output"]]
        self.candidates: dict[str, PartCandidate] = {}
        for i, c in enumerate(manifest["candidates"]):
            try:
                cut = tuple(
                    CutTensor(str(t["name"]), tuple(int(s) for s in t["shape"]), str(t["dtype"]))
                    for t in c["cut"]
                )
                pc = PartCandidate(
                    index=int(c["index"]),
                    name=str(c["name"]),
                    kind=str(c["kind"]),
                    n_head=int(c["n_head"]),
                    cut=cut,
                    head_file=c["head"]["file"] if c["head"] else None,
                    tail_file=c["tail"]["file"] if c["tail"] else None,
                )
            except (KeyError, TypeError, ValueError) as e:
                raise PartsError(f"{root / MANIFEST}: candidates[{i}]: malformed ({e!r})") from e
            self.candidates[pc.name] = pc
        self._engines: dict[str, Any] = {}
        self._lock = threading.Lock()

    def candidate(self, name: str) -> PartCandidate:
        """The candidate called ``name``; :class:`PartsError` naming it if absent."""
        try:
            return self.candidates[name]
        except KeyError:
            raise PartsError(
                f"candidate {name!r} is not in the partitions of {self.network!r} "
                f"(exported: {list(self.candidates)})"
            ) from None

    def by_index(self, index: int) -> PartCandidate:
        """The candidate with profile index ``index``."""
        for c in self.candidates.values():
            if c.index == index:
                return c
        raise PartsError(f"candidate index {index} is not in the partitions of {self.network!r}")

    def engine(self, kind: str = "torch") -> Any:
        """The (cached) engine of that kind running this partition's heads and tails."""
        if kind not in ENGINES:
            raise PartsError(f"engine must be one of {ENGINES}, got {kind!r}")
        with self._lock:
            if kind not in self._engines:
                if kind == "torch":
                    from .engines_torch import TorchEngine

                    self._engines[kind] = TorchEngine(self)
                else:
                    self._engines[kind] = OrtEngine(self)
            return self._engines[kind]

    def check_weights(self) -> None:
        """Verify the sha256 of ``weights.npz`` and of every ONNX file."""
        files = [self.manifest["weights"]]
        for c in self.manifest["candidates"]:
            files += [f for f in (c["head"], c["tail"]) if f]
        for f in files:
            got = hashlib.sha256((self.root / f["file"]).read_bytes()).hexdigest()
            if got != f["sha256"]:
                raise PartsError(f"{self.root / f['file']}: sha256 {got} != manifest's")


def load_parts(path: str | Path) -> Partitions:
    """Load a partition directory written by ``python -m edgesplit.runtime partition``.

    Raises
    ------
    PartsError
        If ``parts.json`` is missing, of another format or version, or malformed.
    """
    root = Path(path)
    file = root / MANIFEST
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PartsError(f"{file}: no partition manifest here") from None
    except json.JSONDecodeError as e:
        raise PartsError(f"{file}: not valid JSON ({e})") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise PartsError(f"{file}: field 'format' must be {FORMAT!r}")
    if doc.get("format_version") != FORMAT_VERSION:
        raise PartsError(
            f"{file}: field 'format_version' = {doc.get('format_version')!r}: "
            f"this reader reads {FORMAT_VERSION}"
        )
    for key in ("network", "source", "input", "output", "weights", "candidates"):
        if key not in doc:
            raise PartsError(f"{file}: field {key!r} is missing")
    return Partitions(root, doc)


class OrtEngine:
    """Heads and tails on onnxruntime: one intra-op thread, full graph optimisation.

    ``head(name, image)`` returns the cut tensors (float32, cut order); ``tail(name,
    tensors)`` the network's first output. Sessions are created on first use and cached.
    """

    kind = "onnxruntime"

    def __init__(self, parts: Partitions) -> None:
        import onnxruntime as ort

        self._ort = ort
        self.parts = parts
        self._sessions: dict[str, Any] = {}

    def _session(self, file: str | None, what: str) -> Any:
        if file is None:
            raise PartsError(f"{self.parts.network}: {what} has no ONNX file in the partition")
        if file not in self._sessions:
            so = self._ort.SessionOptions()
            so.intra_op_num_threads = 1
            so.inter_op_num_threads = 1
            so.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            self._sessions[file] = self._ort.InferenceSession(
                str(self.parts.root / file), so, providers=["CPUExecutionProvider"]
            )
        return self._sessions[file]

    def warm(self, name: str) -> None:
        """Create the sessions of candidate ``name`` (so that the first task is not slower)."""
        c = self.parts.candidate(name)
        if c.head_file:
            self._session(c.head_file, "head")
        if c.tail_file:
            self._session(c.tail_file, "tail")

    def head(self, name: str, image: np.ndarray) -> list[np.ndarray]:
        """Cut tensors of candidate ``name`` for a uint8 ``image``."""
        c = self.parts.candidate(name)
        if c.kind == "input":
            return [image]
        sess = self._session(c.head_file, f"head of {name!r}")
        return list(sess.run(None, {"input": preprocess(image)}))

    def tail(self, name: str, tensors: Sequence[np.ndarray]) -> np.ndarray:
        """The network's output from the cut tensors of candidate ``name``."""
        c = self.parts.candidate(name)
        if c.kind == "output":
            return tensors[0]
        sess = self._session(c.tail_file, f"tail of {name!r}")
        feeds: Mapping[str, np.ndarray] = {
            t.name: (preprocess(x) if c.kind == "input" else x)
            for t, x in zip(c.cut, tensors, strict=True)
        }
        return sess.run(None, dict(feeds))[0]
