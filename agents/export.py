"""Export a trained policy for deployment: ``policy.onnx`` and its manifest ``policy.json``.

The ONNX graph takes the observation (and the action mask, for policies trained with masks:
MaskablePPO, MADDPG, DQN, DDQN) and returns the action the environment would be given,
post-processing included: the (masked) argmax of every discrete dimension, or the
deterministic continuous action. A policy trained without masks is exported without them,
so the deployed policy is exactly the evaluated one; an infeasible choice it makes is
replaced as the environment replaces it (all-local, home edge). What an action *means*
(split index, target, weights) is decoded by :func:`edgesplit.sim.encoding.decode`, the
same pure-numpy decoder the environment uses, so there is exactly one decoder.

``policy.json`` holds everything a scheduler needs to build the observation and read the
action, with no pickle anywhere: the format version, the algorithm, the environment id and
version, the scenario, the static tables (devices, networks and their split candidates,
targets, scales), the observation and action layouts, the ONNX file's sha256, the
training summary, and one digest over the manifest's contents and the ONNX file
together. :mod:`edgesplit.scheduler` loads it.

>>> import tempfile
>>> from edgesplit.agents.registry import get_agent
>>> agent = get_agent("ppo").build({"policy": "MlpPolicy", "kwargs": {"n_steps": 64,
...     "batch_size": 64}}, {"scenario": "single"}, seed=0)
>>> out = export_policy(agent, "ppo", {"scenario": "single"}, tempfile.mkdtemp())
>>> sorted(p.name for p in out.iterdir())
['policy.json', 'policy.onnx']
"""

from __future__ import annotations

import json
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgesplit.envs import ENV_ID
from edgesplit.envs.gym_env import SplitOffloadEnv
from edgesplit.scheduler.policy import FORMAT, FORMAT_VERSION, file_sha256, policy_digest

from .protocol import Agent
from .registry import get_agent

__all__ = ["FORMAT", "FORMAT_VERSION", "PolicyModule", "export_policy"]

OPSET = 17


class PolicyModule(nn.Module):
    """A trained policy as a plain function: observation (+ mask) -> the env's action.

    ``policy`` is the agent's :meth:`~edgesplit.agents.protocol.Agent.policy_module`:
    observation to action logits (discrete views) or to the deterministic action
    (continuous). ``kind`` is ``"multidiscrete"`` (masked argmax per dimension, int64
    ``[B, dims]``), ``"discrete"`` (masked argmax, int64 ``[B]``) or ``"continuous"`` (the
    action as it is, float32 ``[B, dims]`` in [-1, 1]).
    """

    def __init__(self, policy: nn.Module, kind: str, nvec: np.ndarray | None = None) -> None:
        super().__init__()
        self.policy = policy
        self.kind = kind
        self.nvec = [int(n) for n in nvec] if nvec is not None else []

    def forward(self, obs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.kind == "continuous":
            return self.policy(obs)
        logits = self.policy(obs)
        if mask is not None:
            logits = logits.masked_fill(~mask, float("-inf"))
        if self.kind == "discrete":
            return logits.argmax(dim=1)
        out, i = [], 0
        for n in self.nvec:
            out.append(logits[:, i : i + n].argmax(dim=1))
            i += n
        return torch.stack(out, dim=1)


def _version() -> str:
    try:
        return metadata.version("edgesplit")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


def export_policy(
    model: Agent | Any,
    algo: str,
    env_kwargs: dict[str, Any],
    out_dir: str | Path,
    summary: dict[str, Any] | None = None,
) -> Path:
    """Write ``policy.onnx`` and ``policy.json`` for ``model`` (an agent,
    :class:`~edgesplit.agents.protocol.Agent`, or the library model that registry entry
    ``algo`` wraps, trained on ``gym.make(ENV_ID, **env_kwargs)`` with the spec's decision
    mode and action view) into ``out_dir``; returns ``out_dir``.

    The files are written under temporary names and renamed, so a reader never sees a
    half-written policy. Raises ``ValueError`` naming the field when the model and the
    environment do not fit together.
    """
    spec = get_agent(algo)
    if not isinstance(model, Agent):  # a bare library model: the protocol around it
        model = spec.agent_class()(spec, model)
    elif model.spec != spec:
        raise ValueError(f"algo: {algo!r} is not the agent's own {model.spec.name!r}")
    kw = {"decision_mode": spec.decision_mode, "action_type": spec.action_type, **env_kwargs}
    env = SplitOffloadEnv(**kw)
    ta = env.core.tables
    obs_dim = int(env.observation_space.shape[0])
    if tuple(model.observation_space.shape) != (obs_dim,):
        raise ValueError(
            f"model.observation_space: shape {model.observation_space.shape} does not fit "
            f"the environment's {(obs_dim,)} (scenario {env.scenario.name!r})"
        )
    at = kw["action_type"]
    if at == "multidiscrete":
        nvec = np.asarray(env.action_space.nvec).reshape(-1)
        if not np.array_equal(np.asarray(model.action_space.nvec).reshape(-1), nvec):
            raise ValueError(f"model.action_space: {model.action_space} != {env.action_space}")
        kind, mask_len = "multidiscrete", int(nvec.sum())
    elif at == "discrete":
        nvec, kind, mask_len = None, "discrete", int(env.action_space.n)
        if int(model.action_space.n) != mask_len:
            raise ValueError(f"model.action_space: {model.action_space} != {env.action_space}")
    else:
        nvec, kind, mask_len = None, "continuous", 0
    module = PolicyModule(model.policy_module(), kind, nvec).eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_tmp = out_dir / "policy.onnx.tmp"
    obs = torch.zeros((2, obs_dim), dtype=torch.float32)
    inputs: tuple[torch.Tensor, ...] = (obs,)
    names = ["obs"]
    if mask_len and spec.masked:  # only policies trained with masks are deployed with them
        inputs = (obs, torch.ones((2, mask_len), dtype=torch.bool))
        names.append("action_mask")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
        torch.onnx.export(
            module,
            inputs,
            str(onnx_tmp),
            input_names=names,
            output_names=["action"],
            dynamic_axes={n: {0: "batch"} for n in [*names, "action"]},
            opset_version=OPSET,
            dynamo=False,
        )
    onnx_path = out_dir / "policy.onnx"
    onnx_tmp.replace(onnx_path)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "algorithm": spec.name,
        "env_id": ENV_ID,
        "env_version": 0,
        "edgesplit_version": _version(),
        "decision_mode": kw["decision_mode"],
        "action_type": at,
        "scenario": env.scenario.to_dict(),
        "tables": ta.to_dict(),
        "observation": {
            "dim": obs_dim,
            "per_device": ta.obs_dim,
            "device_layout": [[name, size] for name, size in ta.observation_layout()],
        },
        "action": {
            "shape": list(env.action_space.shape or ()),
            "nvec": nvec.tolist() if nvec is not None else None,
            "n": mask_len if kind == "discrete" else None,
        },
        "onnx": {
            "file": onnx_path.name,
            "sha256": file_sha256(onnx_path),
            "opset": OPSET,
            "inputs": names,
            "outputs": ["action"],
        },
        "training": summary or {},
    }
    # one sha256 over the manifest's contents and the ONNX file together (checked at load)
    manifest["digest"] = policy_digest(manifest, onnx_path)
    tmp = out_dir / "policy.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, allow_nan=False))
    tmp.replace(out_dir / "policy.json")
    return out_dir
