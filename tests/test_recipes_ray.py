"""The RLlib recipes, run in their own environment by ``make recipes-ray`` (Ray pins
Gymnasium 1.2.2; torch stays the CPU build), which ``make test`` ends with. Skipped in the
main environment, which has no Ray; under the make target a missing Ray fails.

Ray must bind and talk on the loopback only: the single-agent recipe runs under ``strace``
and every address its processes bind or connect to is checked.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
from recipe_runner import RECIPES, require_library, run_recipe  # tests/recipe_runner.py

require_library("ray", venv="ray")

pytestmark = pytest.mark.slow
_ADDR = re.compile(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"')
LOOPBACK = ("127.", "::1", "::ffff:127.")


def test_rllib_ppo_remote_env_runners_on_the_loopback_only(tmp_path) -> None:
    strace = shutil.which("strace")
    assert strace, "strace is needed to check where Ray binds and connects"
    trace = tmp_path / "net.trace"
    cmd = [strace, "-f", "-e", "trace=connect,bind,sendto", "-o", str(trace)]
    cmd += [sys.executable, str(RECIPES / "rllib_ppo.py"), "--iterations", "2", "--batch", "200"]
    proc = subprocess.run(
        cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert re.search(r"trained 2 iterations, 400(\.0)? env steps", proc.stdout), proc.stdout
    addrs = {a or b for a, b in _ADDR.findall(trace.read_text())}
    assert addrs, "no network calls seen: the trace did not work"
    assert all(a.startswith(LOOPBACK) for a in addrs), f"non-loopback addresses: {addrs}"


def test_rllib_ppo_with_the_env_class_and_a_config_mapping(tmp_path) -> None:
    out = run_recipe(
        "rllib_ppo.py", tmp_path, "--env", "class", "--iterations", "1", "--batch", "200"
    )
    assert re.search(r"trained 1 iterations, 200(\.0)? env steps", out), out


def test_rllib_multi_agent_ppo_with_one_shared_policy(tmp_path) -> None:
    out = run_recipe("rllib_multi_agent.py", tmp_path, "--iterations", "1", "--batch", "200")
    # the default scenario's six devices, all learning through the one policy
    assert "6 agents" in out and "policies learned ['shared']" in out, out


def test_ray_tune_sweep_writes_one_results_table(tmp_path) -> None:
    out = tmp_path / "sweep"
    args = ["--algos", "ppo", "maskable_ppo", "--seeds", "0", "1", "--scenarios", "single"]
    args += ["--timesteps", "2048", "--eval-episodes", "2", "--out", str(out)]
    stdout = run_recipe("ray_sweep.py", tmp_path, *args, timeout=900)
    assert "4 trials" in stdout
    lines = (out / "results.md").read_text().splitlines()
    rows = [ln.split("|")[1:-1] for ln in lines[2:]]
    got = sorted((r[0].strip(), r[1].strip(), r[2].strip(), r[7].strip()) for r in rows)
    want = [(a, "single", s, "2048") for a in ("maskable_ppo", "ppo") for s in ("0", "1")]
    assert got == want
    for r in rows:  # every trial evaluated: a finite cost per device-slot
        assert float(r[3]) > 0.0
    assert len(list((out / "runs").glob("*/summary.json"))) == 4
