"""Server and device on loopback: every candidate completes, bad frames get errors and the
server keeps serving, and the deployment path imports no training code (nor torch on
onnxruntime)."""

from __future__ import annotations

import doctest
import importlib
import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from runtime_nets import INPUT_SHAPE, partition_tiny, tiny_resnet

from edgesplit.runtime.device import Device, FixedDecider, RemoteError, ServerEndpoint
from edgesplit.runtime.link import EmulatedLink
from edgesplit.runtime.parts import load_parts, preprocess
from edgesplit.runtime.server import TailServer
from edgesplit.runtime.wire import ERROR, RESULT, STATUS, STATUS_REPLY, TASK, pack_frame, read_frame

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return partition_tiny(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def server(tiny_dir):
    parts = load_parts(tiny_dir)
    with TailServer({"tiny": parts}, engine="onnxruntime", timeout_s=0.5) as srv:
        yield srv


def _whole(img):
    with torch.no_grad():
        return tiny_resnet()(torch.from_numpy(preprocess(img))).numpy()


@pytest.mark.parametrize("wire_dtype", ["float32", "float16", "int8"])
def test_device_and_server_complete_every_candidate(tiny_dir, server, wire_dtype):
    parts = load_parts(tiny_dir)
    host, port = server.address
    ep = {"edge0": ServerEndpoint(host, port, EmulatedLink.constant(200.0, rtt_s=0.002))}
    img = np.random.default_rng(1).integers(0, 256, INPUT_SHAPE, dtype=np.uint8)
    whole = _whole(img)
    tol = {"float32": 1e-4, "float16": 2e-2, "int8": 0.15}[wire_dtype]
    for name, c in parts.candidates.items():
        target = None if c.kind == "output" else "edge0"
        dev = Device("d0", parts, ep, FixedDecider(name, target), engine="onnxruntime",
                     wire_dtype=wire_dtype, app="tiny")  # fmt: skip
        rec = dev.run_task(img)
        dev.close()
        assert rec.candidate == name and rec.target == target
        scale = np.abs(whole).max()
        np.testing.assert_allclose(dev.last_output, whole, atol=tol * scale, err_msg=name)
        if target is None:
            assert rec.bytes_sent == 0 and rec.transfer_s == 0
            continue
        assert rec.transfer_s >= 0.002 * 0.9  # the round-trip delay at least
        assert rec.tail_s > 0 and rec.server_wait_s >= 0
        parts_sum = rec.head_s + rec.transfer_s + rec.server_wait_s + rec.tail_s
        assert rec.end_to_end_s == pytest.approx(parts_sum, rel=1e-6)
        per = {"float32": 4, "float16": 2, "int8": 1}[wire_dtype]
        numel = sum(t.numel for t in c.cut)
        payload = numel * (1 if c.kind == "input" else per)
        assert payload < rec.bytes_sent < payload + 1024  # the frame: payload + header
    assert server.served > 0


def _task_frame(app="tiny", cand=None, shape=None, dtype="float32", n_bytes=None, parts=None):
    c = next(c for c in parts.candidates.values() if c.kind == "intermediate" and len(c.cut) == 1)
    t = c.cut[0]
    shape = list(t.shape) if shape is None else shape
    n = int(np.prod(t.shape)) * 4 if n_bytes is None else n_bytes
    header = {"task": 1, "app": app, "candidate": cand or c.name,
              "tensors": [{"name": t.name, "dtype": dtype, "shape": shape}]}  # fmt: skip
    return pack_frame(TASK, header, b"\0" * n)


def _ask(sock, data):
    sock.sendall(data)
    return read_frame(sock)


def test_errors_are_answered_and_the_server_keeps_serving(tiny_dir, server):
    parts = load_parts(tiny_dir)
    good = _task_frame(parts=parts)
    with socket.create_connection(server.address, timeout=5) as s:
        # well-formed frames with wrong content: an ERROR naming the field, and the
        # connection stays usable
        cases = [
            (_task_frame(app="nope", parts=parts), "header.app", "nope"),
            (_task_frame(cand="nope", parts=parts), "header.candidate", "nope"),
            (_task_frame(shape=[1, 2, 3], n_bytes=24, parts=parts), "header.tensors[0].shape",
             [1, 2, 3]),
            (_task_frame(dtype="uint8", n_bytes=int(np.prod(next(
                c for c in parts.candidates.values() if c.kind == "intermediate"
                and len(c.cut) == 1).cut[0].shape)), parts=parts), "header.tensors[0].dtype",
             "uint8"),
            (_task_frame(dtype="complex", parts=parts), "header.tensors[0].dtype", "complex"),
            (_task_frame(n_bytes=10, parts=parts), "header.tensors[0].shape", None),
            (pack_frame(RESULT, {"task": 1}), "type", RESULT),
        ]  # fmt: skip
        for frame, field, value in cases:
            kind, header, _ = _ask(s, frame)
            assert kind == ERROR, header
            assert header["field"] == field, header
            if value is not None:
                assert header["value"] == value
            assert header["error"]
        kind, header, _ = _ask(s, good)
        assert kind == RESULT and header["task"] == 1
        kind, header, _ = _ask(s, pack_frame(STATUS, {}))
        assert kind == STATUS_REPLY and header["backlog_s"] >= 0
    # a frame that cannot be parsed: an ERROR, then the server closes that connection
    with socket.create_connection(server.address, timeout=5) as s:
        kind, header, _ = _ask(s, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert kind == ERROR and header["field"] == "magic"
        assert s.recv(1) == b""
    # a frame that stalls half-way: a time-out ERROR after timeout_s, connection closed
    with socket.create_connection(server.address, timeout=5) as s:
        kind, header, _ = _ask(s, good[:30])
        assert kind == ERROR and "timed out" in header["error"]
        assert s.recv(1) == b""
    # a payload longer than allowed is refused from the prefix alone
    with socket.create_connection(server.address, timeout=5) as s:
        big = bytearray(good[:20])
        big[12:20] = (1 << 40).to_bytes(8, "little")
        kind, header, _ = _ask(s, bytes(big))
        assert kind == ERROR and header["field"] == "payload_length"
    # and the server still serves
    with socket.create_connection(server.address, timeout=5) as s:
        kind, header, _ = _ask(s, good)
        assert kind == RESULT


def test_device_raises_the_servers_error(tiny_dir, server):
    parts = load_parts(tiny_dir)
    ep = {"edge0": ServerEndpoint(*server.address)}
    name = next(c.name for c in parts.candidates.values() if c.kind == "intermediate")
    dev = Device("d0", parts, ep, FixedDecider(name, "edge0"), engine="onnxruntime",
                 app="not-hosted")  # fmt: skip
    with pytest.raises(RemoteError, match="unknown application"):
        dev.run_task()
    dev.close()


_HYGIENE = """
import sys
for m in {blocked!r}:
    sys.modules[m] = None  # importing them fails
sys.path.insert(0, {tests!r})
import numpy as np
import edgesplit.runtime.__main__  # the device command's module
from edgesplit.runtime.battery import Battery
from edgesplit.runtime.device import Device, FixedDecider, ServerEndpoint
from edgesplit.runtime.parts import load_parts
from edgesplit.runtime.server import TailServer
parts = load_parts({parts!r})
heads = {{"tiny": dict.fromkeys(parts.candidates, 0.0)}}
with TailServer({{"tiny": parts}}, engine={engine!r}) as srv:
    for name, c in parts.candidates.items():
        t = None if c.kind == "output" else "edge0"
        bat = Battery(10.0, 5.0, 10.0, 4.0, 0.1, harvest_w=1.0, budget_w=1.0, head_energy_j=heads)
        # as the device command builds it from the scheduler's description
        bat = Battery.from_spec({{"capacity_j": 10.0, "harvest_w": 1.0, "budget_w": 1.0,
                                 "p_active_w": 10.0, "p_tx_w": 4.0, "slot_s": 0.1,
                                 "head_energy_j": heads}}, 5.0)
        d = Device("d0", parts, {{"edge0": ServerEndpoint(*srv.address)}}, FixedDecider(name, t),
                   engine={engine!r}, app="tiny", battery=bat)
        assert "charge_j" in d.snapshot_entry()
        assert d.run_task().energy_j > 0
        d.close()
loaded = [m for m in {forbidden!r} if sys.modules.get(m) is not None]
assert not loaded, loaded
# the battery is the simulator's accounting without the simulator
assert sys.modules.get("edgesplit.sim") is None, "the device imported the simulator"
print("ok")
"""


@pytest.mark.parametrize("engine", ["onnxruntime", "torch"])
def test_device_and_server_import_no_training_code(tiny_dir, engine):
    training = ["gymnasium", "pettingzoo", "stable_baselines3", "sb3_contrib"]
    blocked = training + (["torch"] if engine == "onnxruntime" else [])
    code = _HYGIENE.format(blocked=blocked, tests=str(TESTS), parts=str(tiny_dir),
                           engine=engine, forbidden=blocked)  # fmt: skip
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                       text=True, timeout=120, check=False)  # fmt: skip
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def test_runtime_doctests():
    for name in ("wire", "link", "base", "split", "partition", "validate"):
        mod = importlib.import_module(f"edgesplit.runtime.{name}")
        res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS, verbose=False)
        assert res.failed == 0, name
        assert res.attempted > 0, name


def test_cli_device_against_cli_server(tiny_dir):
    env_path = str(TESTS)
    import os

    env = {**os.environ, "PYTHONPATH": env_path + os.pathsep + os.environ.get("PYTHONPATH", "")}
    srv = subprocess.Popen(
        [sys.executable, "-m", "edgesplit.runtime", "serve", "--parts", str(tiny_dir), "--port",
         "0", "--engine", "onnxruntime"], stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        line = srv.stdout.readline()
        addr = line.split(" on ")[1].split()[0]
        name = next(c.name for c in load_parts(tiny_dir).candidates.values()
                    if c.kind == "intermediate")  # fmt: skip
        r = subprocess.run(
            [sys.executable, "-m", "edgesplit.runtime", "device", "--parts", str(tiny_dir),
             "--server", f"edge0={addr}", "--candidate", name, "--tasks", "3", "--rate-mbps",
             "50", "--engine", "onnxruntime"],
            capture_output=True, text=True, timeout=60, env=env, check=False,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        recs = [json.loads(x) for x in r.stdout.splitlines()]
        assert len(recs) == 3 and all(x["candidate"] == name for x in recs)
    finally:
        srv.terminate()
        srv.wait(10)


def test_a_huge_dimension_names_the_field():
    """A tensor header asking for a dimension numpy cannot make gets a FrameError naming the
    shape's field (numpy's own error named nothing)."""
    from edgesplit.runtime.wire import FrameError, decode_tensors

    metas = [{"name": "x", "dtype": "float32", "shape": [0, 10**20]}]
    with pytest.raises(FrameError) as err:
        decode_tensors(metas, b"")
    assert err.value.field == "header.tensors[0].shape"
