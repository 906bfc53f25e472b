"""Load an exported policy directory (``policy.json`` + ``policy.onnx``) and run it.

Nothing here unpickles anything: the manifest is JSON, the network is ONNX, run by
onnxruntime. Every problem with the directory is a :class:`PolicyError` naming the file, the
field and the value.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from edgesplit.cost_models.errors import FieldError
from edgesplit.sim.encoding import Tables

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "SUPPORTED_FORMAT_VERSIONS",
    "LoadedPolicy",
    "PolicyError",
    "file_sha256",
    "load_policy",
]

FORMAT = "edgesplit-policy"
FORMAT_VERSION = 1  # what agents.export writes
SUPPORTED_FORMAT_VERSIONS = (1,)  # what this scheduler reads
_REQUIRED = (
    "format",
    "format_version",
    "algorithm",
    "env_id",
    "decision_mode",
    "action_type",
    "scenario",
    "tables",
    "observation",
    "action",
    "onnx",
)


class PolicyError(FieldError):
    """A policy directory is missing, malformed, of an unknown version, or tampered with."""


class LoadedPolicy:
    """An exported policy, ready to answer: its manifest, tables and ONNX session.

    Attributes
    ----------
    manifest : dict
        The parsed ``policy.json``.
    tables : Tables
        The static tables the policy was trained with (observation scales included).
    decision_mode, action_type : str
        As the environment it was trained on.
    sha256 : str
        The ONNX file's hash (checked against the manifest at load).
    """

    def __init__(self, path: Path, manifest: dict[str, Any], session: Any) -> None:
        self.path = path
        self.manifest = manifest
        self.tables = Tables.from_dict(manifest["tables"])
        self.decision_mode: str = manifest["decision_mode"]
        self.action_type: str = manifest["action_type"]
        self.algorithm: str = manifest["algorithm"]
        self.sha256: str = manifest["onnx"]["sha256"]
        self._session = session
        self._inputs = [i.name for i in session.get_inputs()]

    @property
    def uses_mask(self) -> bool:
        return "action_mask" in self._inputs

    def act(self, obs: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """The policy's actions for a batch of observations ``[B, dim]`` (and masks)."""
        feeds: dict[str, np.ndarray] = {"obs": np.ascontiguousarray(obs, dtype=np.float32)}
        if self.uses_mask:
            if mask is None:
                raise ValueError("this policy needs an action mask")
            feeds["action_mask"] = np.ascontiguousarray(mask, dtype=bool)
        (out,) = self._session.run(None, feeds)
        return out

    def describe(self) -> dict[str, Any]:
        """What ``GET /v1/policy`` answers: who the policy is and what it decides for."""
        m, ta = self.manifest, self.tables
        return {
            "algorithm": m["algorithm"],
            "env_id": m["env_id"],
            "env_version": m.get("env_version"),
            "format_version": m["format_version"],
            "scenario": m["scenario"].get("name"),
            "decision_mode": m["decision_mode"],
            "action_type": m["action_type"],
            "devices": list(ta.device_names),
            "applications": list(ta.app_names),
            "targets": list(ta.target_names),
            "access_points": list(ta.access_point_names),
            "split_candidates": {
                a: list(c) for a, c in zip(ta.app_names, ta.candidate_names, strict=True)
            },
            "sha256": m["onnx"]["sha256"],
            "edgesplit_version": m.get("edgesplit_version"),
        }


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file (read in 1 MiB chunks); the manifest's ONNX hash."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _no_constants(token: str) -> float:
    raise ValueError(f"{token} is not valid JSON")


def load_policy(path: str | Path) -> LoadedPolicy:
    """Load and check the policy directory ``path`` (or its ``policy.json``).

    Raises :class:`PolicyError` when a file is missing or unreadable, the format or its
    version is unknown, a required field is missing, the tables are inconsistent, or the
    ONNX file's sha256 differs from the manifest's.
    """
    p = Path(path)
    if p.name == "policy.json":
        p = p.parent
    mpath = p / "policy.json"
    if not mpath.is_file():
        raise PolicyError(p, "policy.json", str(mpath), "no manifest in the policy directory")
    try:
        manifest = json.loads(mpath.read_text(), parse_constant=_no_constants)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise PolicyError(mpath, "(file)", str(mpath), f"not readable JSON: {e}") from e
    if not isinstance(manifest, dict):
        raise PolicyError(mpath, "(top level)", type(manifest).__name__, "expected an object")
    missing = [k for k in _REQUIRED if k not in manifest]
    if missing:
        raise PolicyError(mpath, missing[0], None, f"required field missing (all: {missing})")
    if manifest["format"] != FORMAT:
        raise PolicyError(mpath, "format", manifest["format"], f"expected {FORMAT!r}")
    ver = manifest["format_version"]
    if ver not in SUPPORTED_FORMAT_VERSIONS:
        raise PolicyError(
            mpath,
            "format_version",
            ver,
            f"this scheduler reads versions {list(SUPPORTED_FORMAT_VERSIONS)}",
        )
    for key, allowed in (
        ("decision_mode", ("joint", "sequential")),
        ("action_type", ("multidiscrete", "discrete", "continuous")),
    ):
        if manifest[key] not in allowed:
            raise PolicyError(mpath, key, manifest[key], f"expected one of {list(allowed)}")
    onnx_meta = manifest["onnx"]
    if not isinstance(onnx_meta, dict) or not isinstance(onnx_meta.get("file"), str):
        raise PolicyError(mpath, "onnx.file", onnx_meta, "expected the ONNX file's name")
    fname = onnx_meta["file"]
    if Path(fname).name != fname:
        raise PolicyError(mpath, "onnx.file", fname, "must be a file name inside the directory")
    opath = p / fname
    if not opath.is_file():
        raise PolicyError(mpath, "onnx.file", fname, f"no such file in {p}")
    digest = file_sha256(opath)
    if digest != onnx_meta.get("sha256"):
        raise PolicyError(
            mpath,
            "onnx.sha256",
            onnx_meta.get("sha256"),
            f"does not match {fname} (its sha256 is {digest}): the files do not belong together",
        )
    try:
        tables = Tables.from_dict(manifest["tables"])
    except (TypeError, ValueError) as e:
        raise PolicyError(mpath, "tables", "...", str(e)) from e
    obs = manifest["observation"]
    want = tables.obs_dim
    if manifest["decision_mode"] == "joint":
        want *= tables.n_devices
    else:
        want += tables.n_devices + tables.n_aps + tables.n_targets
    if not isinstance(obs, dict) or obs.get("dim") != want:
        raise PolicyError(
            mpath, "observation.dim", obs.get("dim") if isinstance(obs, dict) else obs,
            f"the tables give {want}",
        )  # fmt: skip
    for k in ("latency_scale_s", "bytes_scale", "rate_scale_mbps", "horizon", "queue_capacity"):
        v = getattr(tables, k)
        if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise PolicyError(mpath, f"tables.{k}", v, "must be a positive number")
    for k in ("head_s", "tail_s", "bytes_", "deadline_s", "weight_levels"):
        arr = getattr(tables, k)
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise PolicyError(mpath, f"tables.{k}", "...", "must be finite and >= 0")
    try:
        import onnxruntime as ort
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise ImportError("edgesplit.scheduler needs onnxruntime (pip install onnxruntime)") from e
    try:
        session = ort.InferenceSession(str(opath), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise PolicyError(opath, "(file)", fname, f"onnxruntime cannot load it: {e}") from e
    names = [i.name for i in session.get_inputs()]
    if names != list(onnx_meta.get("inputs", names)) or "obs" not in names:
        raise PolicyError(mpath, "onnx.inputs", onnx_meta.get("inputs"), f"the graph has {names}")
    return LoadedPolicy(p, manifest, session)
