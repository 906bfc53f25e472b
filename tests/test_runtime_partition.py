"""Partitions: head then tail equals the whole network, on onnxruntime and on torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from runtime_nets import INPUT_SHAPE, tiny_resnet

from edgesplit.runtime.partition import kept_candidates, partition
from edgesplit.runtime.parts import PartsError, load_parts, preprocess

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def tiny_parts(tmp_path_factory, monkeypatch_module):
    out = tmp_path_factory.mktemp("tiny")
    partition("runtime_nets:tiny_resnet", out, input_shape=INPUT_SHAPE)
    return load_parts(out)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(TESTS))
        yield mp


def _image(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


@pytest.mark.parametrize("engine", ["onnxruntime", "torch"])
def test_head_then_tail_is_the_whole_tiny_network(tiny_parts, engine):
    net = tiny_resnet()
    img = _image(INPUT_SHAPE)
    with torch.no_grad():
        whole = net(torch.from_numpy(preprocess(img))).numpy()
    eng = tiny_parts.engine(engine)
    assert len(tiny_parts.candidates) == tiny_parts.manifest["n_candidates"]  # no profile: all
    for name, c in tiny_parts.candidates.items():
        cut = eng.head(name, img)
        assert [t.shape for t in cut] == [m.shape for m in c.cut], name
        out = eng.tail(name, cut)
        np.testing.assert_allclose(out, whole, rtol=1e-4, atol=1e-5, err_msg=name)


def test_cuts_inside_the_residual_block_send_two_tensors(tiny_parts):
    two = [c for c in tiny_parts.candidates.values() if len(c.cut) == 2]
    assert two, "a cut inside the residual block crosses the block input and the branch"
    for c in two:
        names = {t.name for t in c.cut}
        assert "relu" in names  # the block input, kept for the shortcut
        assert all(t.dtype == "float32" and t.shape[1] == 8 for t in c.cut)
    manifest = json.loads((tiny_parts.root / "parts.json").read_text())
    first, last = manifest["candidates"][0], manifest["candidates"][-1]
    assert first["kind"] == "input" and first["head"] is None
    assert last["kind"] == "output" and last["tail"] is None


def test_shipped_resnet18_residual_and_kept_candidates(tmp_path):
    from edgesplit.cost_models.network import load_network

    prof = load_network("resnet18")
    residual = next(k for k, c in enumerate(prof.candidates) if len(c.cut) == 2)
    kept = kept_candidates(prof, ["x86_cpu_1t"])
    assert kept[0] == 0 and kept[-1] == len(prof.candidates) - 1
    inner = next(k for k in kept if 0 < k < kept[-1])
    out = tmp_path / "r18"
    r = subprocess.run(
        [sys.executable, "-m", "edgesplit.runtime", "partition", "resnet18", "--out", str(out),
         "--candidates", f"{residual},{inner}"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    parts = load_parts(out)
    parts.check_weights()
    img = _image((1, 3, 224, 224))
    from edgesplit.cost_models import zoo

    with torch.no_grad():
        whole = zoo.resnet18()(torch.from_numpy(preprocess(img))).numpy()
    ort = parts.engine("onnxruntime")
    for name, c in parts.candidates.items():
        assert [t.name for t in c.cut] == list(prof.candidates[c.index].cut)
        np.testing.assert_allclose(ort.tail(name, ort.head(name, img)), whole, rtol=1e-3,
                                   atol=1e-4, err_msg=name)  # fmt: skip
    assert len(parts.by_index(residual).cut) == 2
    with pytest.raises(PartsError, match="'nope'"):
        parts.candidate("nope")
