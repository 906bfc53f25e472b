"""Load an exported policy directory (``policy.json`` + ``policy.onnx``), check it, run it.

Nothing here unpickles anything: the manifest is JSON, the network is ONNX, run by
onnxruntime. A policy is refused at load, with a :class:`PolicyError` naming the file, the
field and the value, when

* a file is missing or unreadable, the manifest is not JSON or is nested pathologically deep,
  its format or version is unknown, or a required field is missing;
* the **digest** differs: one sha256 covers the manifest's contents (every field but the
  digest itself, as canonical JSON) and the ONNX file together (:func:`policy_digest`), so
  editing either file, or pairing files of two exports, is noticed;
* the manifest is **inconsistent**, digest or not (a re-digested edit, an exporter bug):
  every table has the shape the name lists give and the right type, every index is within
  range (``tables.n_valid`` within the candidates, ``tables.home`` a reachable access point,
  ``tables.ap_of_target`` an access point), ``scenario`` is a mapping, the observation and
  action layouts are the ones the tables give for the decision mode and action type;
* the **ONNX graph** does not fit the manifest: its inputs and outputs (names, element
  types, widths) must be the declared observation, mask and action layout, and a probe run
  on a batch of two observations must return actions of that layout, within range.

The digest detects accidents and edits of a copy: it is not a signature (whoever can write
the directory can recompute it). Sign the directory where the threat is a deliberate
attacker on the deploy host.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from edgesplit.sim.encoding import Tables

from . import safejson
from .errors import PolicyError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MAX_MANIFEST_DEPTH",
    "SUPPORTED_FORMAT_VERSIONS",
    "LoadedPolicy",
    "PolicyError",
    "file_sha256",
    "load_policy",
    "policy_digest",
]

FORMAT = "edgesplit-policy"
FORMAT_VERSION = 2  # what agents.export writes; 2: the digest over manifest and ONNX
SUPPORTED_FORMAT_VERSIONS = (2,)  # what this scheduler reads
MAX_MANIFEST_DEPTH = 64  # a real manifest nests about 8 deep
_DIGEST_DOMAIN = b"edgesplit-policy-digest-v1\0"
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
    "digest",
)
_ACTION_TYPES = {
    "joint": ("multidiscrete", "continuous"),
    "sequential": ("discrete", "multidiscrete", "continuous"),
}
_NAME_LISTS = ("device_names", "app_names", "target_names", "access_point_names")
_SCALARS = ("latency_scale_s", "bytes_scale", "rate_scale_mbps", "energy_scale_j")
_COUNTS = ("horizon", "queue_capacity")


class LoadedPolicy:
    """An exported policy, ready to answer: its manifest, tables and ONNX session.

    Attributes
    ----------
    manifest : dict
        The parsed ``policy.json``.
    tables : Tables
        The static tables the policy was trained with (observation scales included).
    decision_mode, action_type, algorithm : str
        As the environment it was trained on, and the algorithm that trained it.
    sha256 : str
        The ONNX file's hash (checked at load).
    digest : str
        The sha256 over the manifest and the ONNX file together (checked at load).
    threads : int
        onnxruntime's intra-op threads for this session.
    """

    def __init__(
        self, path: Path, manifest: dict[str, Any], session: Any, threads: int = 1
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.tables = Tables.from_dict(manifest["tables"])
        self.decision_mode: str = manifest["decision_mode"]
        self.action_type: str = manifest["action_type"]
        self.algorithm: str = manifest["algorithm"]
        self.sha256: str = manifest["onnx"]["sha256"]
        self.digest: str = manifest["digest"]["value"]
        self.threads = threads
        self._session = session
        self._inputs = [i.name for i in session.get_inputs()]

    @property
    def uses_mask(self) -> bool:
        """Whether the graph takes the action mask (policies trained with masks)."""
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
            # the access points each device has a link to: the keys its requests must give
            # in link_mbps (a device that reports alone can build a valid request from this)
            "device_links": {
                d: [ap for m, ap in enumerate(ta.access_point_names) if ta.reachable[i, m]]
                for i, d in enumerate(ta.device_names)
            },
            "split_candidates": {
                a: list(c) for a, c in zip(ta.app_names, ta.candidate_names, strict=True)
            },
            # each battery's capacity (J): those devices' requests must give charge_j
            "device_batteries_j": {
                d: float(ta.battery_j[i])
                for i, d in enumerate(ta.device_names)
                if ta.battery_j[i] > 0
            },
            # what a battery device needs to keep its battery as the policy was trained
            # (edgesplit.runtime.battery.Battery.from_spec): the scenario's battery, the
            # device class's powers, the slot, and each head's modelled energy
            "device_batteries": self.battery_specs(),
            "sha256": m["onnx"]["sha256"],
            "digest": m["digest"]["value"],
            "edgesplit_version": m.get("edgesplit_version"),
        }

    def battery_specs(self) -> dict[str, dict[str, Any]]:
        """Per device with a battery: ``capacity_j``, ``initial_charge_j`` (the scenario's
        range), ``harvest_w``, ``budget_w`` (None: no budget), ``p_active_w`` (the policy's
        tables), ``p_tx_w`` (the device catalogue's, as the simulator's physics), ``slot_s``
        and ``head_energy_j`` (application -> candidate -> J, the policy's tables: what the
        charge must cover). Empty for a policy without batteries."""
        ta = self.tables
        if not (ta.battery_j > 0).any():
            return {}
        if self._battery_specs is None:
            from edgesplit.sim.scenario import load_scenario
            from edgesplit.sim.tables import build

            sc = load_scenario(self.manifest["scenario"])
            _, ph = build(sc)
            e = ta.head_energy_j
            out = {}
            for i, d in enumerate(ta.device_names):
                b = sc.devices[i].battery
                if b is None:
                    continue
                out[d] = {
                    "capacity_j": float(b.capacity_j),
                    "initial_charge_j": [float(x) for x in b.initial_charge_j],
                    "harvest_w": float(b.harvest_w),
                    "budget_w": None if b.budget_w is None else float(b.budget_w),
                    "p_active_w": float(ta.p_active_w[i]),
                    "p_tx_w": float(ph.p_tx_w[i]),
                    "slot_s": float(sc.slot_s),
                    "head_energy_j": {
                        app: {c: float(e[i, a, s]) for s, c in enumerate(ta.candidate_names[a])}
                        for a, app in enumerate(ta.app_names)
                    },
                }
            self._battery_specs = out
        # a copy: what a caller does with its answer (GET /v1/policy's, a device's) never
        # changes the next one
        return copy.deepcopy(self._battery_specs)

    _battery_specs: dict[str, dict[str, Any]] | None = None


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file (read in 1 MiB chunks); the manifest's ONNX hash."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def policy_digest(manifest: dict[str, Any], onnx_path: str | Path) -> dict[str, str]:
    """The ``digest`` field of a manifest: one sha256 over the manifest's contents (every
    field but ``digest``, as canonical JSON: sorted keys, no spaces, ASCII) and the bytes
    of the ONNX file, in that order."""
    body = {k: v for k, v in manifest.items() if k != "digest"}
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    h = hashlib.sha256(_DIGEST_DOMAIN)
    h.update(canon.encode("ascii"))
    h.update(b"\0")
    with Path(onnx_path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return {"algorithm": "sha256", "value": h.hexdigest()}


# -- checks of the manifest ---------------------------------------------------------------
class _Checker:
    """The consistency checks of one manifest, each error naming ``file`` and the field."""

    def __init__(self, mpath: Path, manifest: dict[str, Any]) -> None:
        self.file, self.m = mpath, manifest

    def fail(self, field: str, value: Any, problem: str) -> PolicyError:
        return PolicyError(self.file, field, value, problem)

    def mapping(self, value: Any, field: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(field, value, f"expected a mapping, got {type(value).__name__}")
        return value

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        v = self.m[key]
        if not isinstance(v, str) or v not in allowed:
            raise self.fail(key, v, f"expected one of {list(allowed)}")
        return v

    def names(self, t: dict[str, Any], key: str) -> list[str]:
        v = t[key]
        field = f"tables.{key}"
        if not isinstance(v, list) or not v:
            raise self.fail(field, v, "expected a non-empty list of names")
        for k, name in enumerate(v):
            if not isinstance(name, str) or not name:
                raise self.fail(f"{field}[{k}]", name, "expected a non-empty string")
        if len(set(v)) != len(v):
            raise self.fail(field, v, "names must be unique")
        return v

    def array(self, t: dict[str, Any], key: str, shape: tuple[int, ...], kind: str) -> np.ndarray:
        """``tables[key]`` as an array of ``shape``; ``kind``: "bool", "int" or "float"."""
        field, v = f"tables.{key}", t[key]
        try:
            a = np.asarray(v)
        except (ValueError, TypeError) as e:  # ragged nesting
            raise self.fail(field, "...", f"not a regular array: {e}") from e
        if a.shape != shape:
            raise self.fail(field, list(a.shape), f"expected shape {list(shape)}")
        if a.size == 0:
            return a.astype({"bool": bool, "int": np.int64, "float": np.float64}[kind])
        ok = {
            "bool": a.dtype == np.bool_,
            "int": a.dtype.kind in "iu",
            "float": a.dtype.kind in "iuf",
        }[kind]
        if not ok:
            raise self.fail(field, _first(a), f"expected {kind} entries, got {a.dtype}")
        if kind == "float":
            a = a.astype(np.float64)
            bad = ~np.isfinite(a) | (a < 0)
            if bad.any():
                idx = tuple(int(i) for i in np.argwhere(bad)[0])
                raise self.fail(f"{field}{list(idx)}", float(a[idx]), "must be finite and >= 0")
        return a

    def index(self, a: np.ndarray, key: str, low: int, high: int, what: str) -> None:
        bad = (a < low) | (a >= high)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise self.fail(
                f"tables.{key}{list(idx)}", int(a[idx]), f"{what}: must be in [{low}, {high})"
            )

    def tables(self) -> Tables:
        t = self.mapping(self.m["tables"], "tables")
        known = set(Tables.__dataclass_fields__)
        for k in sorted(known - set(t)):
            raise self.fail(f"tables.{k}", None, "required field missing")
        for k in sorted(set(t) - known):
            raise self.fail(f"tables.{k}", t[k], "unknown field")
        dev, apps, tgts, aps = (self.names(t, k) for k in _NAME_LISTS)
        n, a, j, m = len(dev), len(apps), len(tgts), len(aps)
        cands = t["candidate_names"]
        if not isinstance(cands, list) or len(cands) != a:
            raise self.fail("tables.candidate_names", cands, f"expected {a} lists (one per app)")
        try:
            s = int(np.shape(t["head_s"])[2])
        except (ValueError, IndexError) as e:
            raise self.fail("tables.head_s", "...", f"expected shape [{n}, {a}, S]: {e}") from e
        if s < 1:
            raise self.fail("tables.head_s", "...", f"expected shape [{n}, {a}, S], S >= 1")
        wl = t["weight_levels"]
        if not isinstance(wl, list):
            raise self.fail("tables.weight_levels", wl, "expected a list of levels")
        levels = self.array(t, "weight_levels", (len(wl),), "float")
        if levels.size == 0 or (levels <= 0).any() or (levels > 1).any():
            raise self.fail("tables.weight_levels", levels.tolist(), "expected levels in (0, 1]")
        self.array(t, "head_s", (n, a, s), "float")
        self.array(t, "tail_s", (a, s, j), "float")
        self.array(t, "bytes_", (a, s), "float")
        deadline = self.array(t, "deadline_s", (a,), "float")
        if (deadline <= 0).any():
            k = int(np.argmin(deadline))
            raise self.fail(f"tables.deadline_s[{k}]", float(deadline[k]), "must be > 0")
        valid = self.array(t, "valid", (a, s), "bool")
        n_valid = self.array(t, "n_valid", (a,), "int")
        self.index(n_valid, "n_valid", 1, s + 1, f"count of an app's candidates (S = {s})")
        for k in range(a):
            nv = int(n_valid[k])
            if not (valid[k, :nv].all() and not valid[k, nv:].any()):
                raise self.fail(
                    f"tables.n_valid[{k}]", nv, f"tables.valid[{k}] marks {int(valid[k].sum())}"
                )
            ck = cands[k]
            if not isinstance(ck, list) or len(ck) != nv or not all(isinstance(c, str) for c in ck):
                raise self.fail(f"tables.candidate_names[{k}]", ck, f"expected {nv} names")
        reach = self.array(t, "reachable", (n, j), "bool")
        home = self.array(t, "home", (n,), "int")
        self.index(home, "home", 0, m, f"an access point ({m} of them)")
        for i in range(n):
            if not reach[i, home[i]]:
                raise self.fail(f"tables.home[{i}]", int(home[i]), "the home edge is unreachable")
        self.array(t, "battery_j", (n,), "float")  # capacity, 0: mains-powered
        self.array(t, "p_active_w", (n,), "float")
        apt = self.array(t, "ap_of_target", (n, j), "int")
        self.index(apt, "ap_of_target", 0, m, f"an access point ({m} of them)")
        for k in _SCALARS:
            v = t[k]
            if (
                isinstance(v, bool)
                or not isinstance(v, (int, float))
                or not math.isfinite(v)
                or v <= 0
            ):
                raise self.fail(f"tables.{k}", v, "must be a positive number")
        for k in _COUNTS:
            v = t[k]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise self.fail(f"tables.{k}", v, "must be a positive integer")
        try:
            return Tables.from_dict(t)
        except (TypeError, ValueError, IndexError) as e:
            raise self.fail("tables", "...", str(e)) from e

    def layouts(self, ta: Tables) -> dict[str, Any]:
        """Check ``observation`` and ``action`` against the tables; returns the layout the
        ONNX graph must have: obs width, mask width, action shape after the batch, dtype."""
        mode, at = self.m["decision_mode"], self.m["action_type"]
        n, d = ta.n_devices, ta.obs_dim
        obs = self.mapping(self.m["observation"], "observation")
        dim = n * d if mode == "joint" else d + n + ta.n_aps + ta.n_targets
        for key, want in (
            ("dim", dim),
            ("per_device", d),
            ("device_layout", [[k, v] for k, v in ta.observation_layout()]),
        ):
            if obs.get(key) != want:
                raise self.fail(f"observation.{key}", obs.get(key), f"the tables give {want}")
        nvec = ta.action_nvec()
        per_dev: tuple[int, ...] = {
            "multidiscrete": (4,),
            "discrete": (),
            "continuous": (ta.n_targets + 3,),
        }[at]
        shape = [n * per_dev[0]] if mode == "joint" else list(per_dev)
        want_nvec = None
        if at == "multidiscrete":
            want_nvec = (np.tile(nvec, n) if mode == "joint" else nvec).tolist()
        want_n = int(np.prod(nvec)) if at == "discrete" else None
        act = self.mapping(self.m["action"], "action")
        for key, want in (("shape", shape), ("nvec", want_nvec), ("n", want_n)):
            if act.get(key) != want:
                raise self.fail(f"action.{key}", act.get(key), f"the tables give {want}")
        mask = {"multidiscrete": int(nvec[0] + nvec[1] + 2 * nvec[2]), "discrete": want_n}.get(at)
        if mask is not None and mode == "joint":
            mask *= n
        return {"obs": dim, "mask": mask, "action": shape, "nvec": want_nvec, "n": want_n}


def _first(a: np.ndarray) -> Any:
    return a.reshape(-1)[0].item() if a.size else None


def _check_graph(
    c: _Checker, session: Any, onnx_meta: dict[str, Any], layout: dict[str, Any], at: str
) -> None:
    """The ONNX graph's inputs and outputs against the manifest's layout, and a probe run."""
    ins, outs = session.get_inputs(), session.get_outputs()
    names = [i.name for i in ins]
    if names not in (["obs"], ["obs", "action_mask"]):
        raise c.fail("onnx.inputs", names, "the graph's inputs must be ['obs'] or "
                     "['obs', 'action_mask']")  # fmt: skip
    if names != onnx_meta.get("inputs"):
        raise c.fail("onnx.inputs", onnx_meta.get("inputs"), f"the graph has {names}")
    if "action_mask" in names and layout["mask"] is None:
        raise c.fail("action_type", at, "a continuous policy takes no action mask")
    out_names = [o.name for o in outs]
    if out_names != ["action"] or onnx_meta.get("outputs", ["action"]) != out_names:
        raise c.fail("onnx.outputs", onnx_meta.get("outputs"), f"the graph has {out_names}")
    want_in = {
        "obs": ("tensor(float)", layout["obs"]),
        "action_mask": ("tensor(bool)", layout["mask"]),
    }
    for i in ins:
        typ, width = want_in[i.name]
        shape = list(i.shape)
        if i.type != typ or len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != width):
            raise c.fail(
                f"onnx.inputs.{i.name}",
                f"{i.type} {shape}",
                f"the manifest's layout needs {typ} [batch, {width}]",
            )
    out_type = "tensor(float)" if at == "continuous" else "tensor(int64)"
    o = outs[0]
    oshape = list(o.shape)
    fixed = [d for d in oshape[1:] if isinstance(d, int)]
    if (
        o.type != out_type
        or len(oshape) != 1 + len(layout["action"])
        or (len(fixed) == len(oshape) - 1 and fixed != layout["action"])
    ):
        raise c.fail(
            "onnx.outputs.action",
            f"{o.type} {oshape}",
            f"action_type {at!r} needs {out_type} [batch, *{layout['action']}]",
        )
    # probe: two observations (zeros, and a mid-range one), every action allowed
    obs = np.stack([np.zeros(layout["obs"]), np.full(layout["obs"], 0.5)]).astype(np.float32)
    feeds: dict[str, np.ndarray] = {"obs": obs}
    if "action_mask" in names:
        feeds["action_mask"] = np.ones((2, layout["mask"]), dtype=bool)
    try:
        (act,) = session.run(None, feeds)
    except Exception as e:  # onnxruntime raises its own exception types
        raise c.fail("onnx.file", onnx_meta["file"], f"the graph fails on a probe: {e}") from e
    act = np.asarray(act)
    if list(act.shape) != [2, *layout["action"]]:
        raise c.fail(
            "onnx.outputs.action", list(act.shape[1:]), f"expected {layout['action']} per row"
        )
    if at == "continuous":
        if not np.all(np.isfinite(act)) or np.abs(act).max() > 1 + 1e-5:
            raise c.fail("onnx.outputs.action", _first(act), "a continuous action is in [-1, 1]")
    else:
        high = np.asarray(layout["nvec"] if at == "multidiscrete" else layout["n"])
        if (act < 0).any() or (act >= high).any():
            raise c.fail("onnx.outputs.action", act.tolist(), f"outside the action space {high}")


def load_policy(path: str | Path, *, threads: int = 1) -> LoadedPolicy:
    """Load and check the policy directory ``path`` (or its ``policy.json``).

    ``threads`` is onnxruntime's intra-op thread count: 1 (the default) keeps tail latency
    low on a busy machine and lets several workers share the cores.

    Raises :class:`PolicyError` naming the file, the field and the value for every problem
    listed in this module's docstring.
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads: expected a positive integer, got {threads!r}")
    p = Path(path)
    if p.name == "policy.json":
        p = p.parent
    mpath = p / "policy.json"
    if not mpath.is_file():
        raise PolicyError(p, "policy.json", str(mpath), "no manifest in the policy directory")
    try:
        manifest = safejson.loads(mpath.read_bytes(), max_depth=MAX_MANIFEST_DEPTH)
    except (OSError, ValueError) as e:
        raise PolicyError(mpath, "(file)", str(mpath), f"not readable JSON: {e}") from e
    if not isinstance(manifest, dict):
        raise PolicyError(mpath, "(top level)", type(manifest).__name__, "expected an object")
    c = _Checker(mpath, manifest)
    missing = [k for k in _REQUIRED if k not in manifest]
    if missing:
        raise c.fail(missing[0], None, f"required field missing (all: {missing})")
    if manifest["format"] != FORMAT:
        raise c.fail("format", manifest["format"], f"expected {FORMAT!r}")
    ver = manifest["format_version"]
    if ver not in SUPPORTED_FORMAT_VERSIONS or isinstance(ver, bool):
        hint = "; re-export the policy (version 1 has no digest)" if ver == 1 else ""
        raise c.fail(
            "format_version",
            ver,
            f"this scheduler reads versions {list(SUPPORTED_FORMAT_VERSIONS)}{hint}",
        )
    onnx_meta = c.mapping(manifest["onnx"], "onnx")
    fname = onnx_meta.get("file")
    if not isinstance(fname, str) or not fname or Path(fname).name != fname:
        raise c.fail("onnx.file", fname, "expected a file name inside the policy directory")
    opath = p / fname
    if not opath.is_file():
        raise c.fail("onnx.file", fname, f"no such file in {p}")
    digest = c.mapping(manifest["digest"], "digest")
    if digest.get("algorithm") != "sha256":
        raise c.fail("digest.algorithm", digest.get("algorithm"), "expected 'sha256'")
    try:
        want = policy_digest(manifest, opath)["value"]
    except (TypeError, ValueError) as e:  # not canonical JSON (cannot happen after loads)
        raise c.fail("digest", "...", f"cannot be computed: {e}") from e
    if digest.get("value") != want:
        raise c.fail(
            "digest.value",
            digest.get("value"),
            f"does not match policy.json and {fname} (their digest is {want}): a file was "
            "edited, or the two files come from different exports",
        )
    if file_sha256(opath) != onnx_meta.get("sha256"):
        raise c.fail("onnx.sha256", onnx_meta.get("sha256"), f"does not match {fname}")
    for key in ("algorithm", "env_id"):
        if not isinstance(manifest[key], str) or not manifest[key]:
            raise c.fail(key, manifest[key], "expected a non-empty string")
    mode = c.choice("decision_mode", tuple(_ACTION_TYPES))
    at = c.choice("action_type", _ACTION_TYPES[mode])
    scenario = c.mapping(manifest["scenario"], "scenario")
    if not isinstance(scenario.get("name"), str):
        raise c.fail("scenario.name", scenario.get("name"), "expected the scenario's name")
    c.mapping(manifest.get("training", {}), "training")
    tables = c.tables()
    layout = c.layouts(tables)
    try:
        import onnxruntime as ort
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise ImportError("edgesplit.scheduler needs onnxruntime (pip install onnxruntime)") from e
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        session = ort.InferenceSession(str(opath), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise PolicyError(opath, "(file)", fname, f"onnxruntime cannot load it: {e}") from e
    _check_graph(c, session, onnx_meta, layout, at)
    return LoadedPolicy(p, manifest, session, threads)
