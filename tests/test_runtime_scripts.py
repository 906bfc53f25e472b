"""``benchmarks/runtime_validate.sh`` and ``benchmarks/runtime_demo.sh`` with stand-ins for
python, ``getconf`` and ``taskset`` (no profiling, no run): the cores they pin to exist on
the machine they choose parallel runs for, a wrong setting is refused before any work, and
a failed run fails the script."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

STUBS = {
    # the machine's core count, as the test sets it
    "getconf": '#!/usr/bin/env bash\necho "$FAKE_NCPU"\n',
    # taskset -c LIST CMD...: refuses a core the machine lacks, as the real one does
    "taskset": """#!/usr/bin/env bash
shift
for c in ${1//,/ }; do
    if [ "$c" -ge "$FAKE_NCPU" ]; then echo "taskset: no core $c" >&2; exit 1; fi
done
echo "taskset $1" >>"$STUB_LOG"
shift
exec "$@"
""",
    # python: writes what each command writes (--out FILE, a -c copy, a JSON report)
    "fakepython": """#!/usr/bin/env bash
case "$1" in
    -c) if [ $# -ge 4 ]; then echo '{}' >"$4"; else echo "3.11 numpy 0 torch 0 ort 0"; fi ;;
    -m) echo "$*" >>"$STUB_LOG"
        case " $* " in *" $FAIL_ON "*) exit 3 ;; esac
        while [ $# -gt 0 ]; do
            if [ "$1" = --out ]; then echo '{}' >"$2"; fi
            shift
        done
        echo '{}' ;;
esac
""",
}


# the scripts' own settings: a test gives them explicitly, never from the caller's shell
OURS = ("PARALLEL", "PAIRED", "CLOCK", "ARRIVAL_SCALE")


def _run(tmp_path: Path, script: str, args: list[str], ncpu: int, **env: str):
    bin_ = tmp_path / "bin"
    bin_.mkdir(exist_ok=True)
    for name, text in STUBS.items():
        (bin_ / name).write_text(text)
        (bin_ / name).chmod(0o755)
    log = tmp_path / "stub.log"
    log.touch()
    full = {
        **{k: v for k, v in os.environ.items() if not k.startswith(OURS)},
        "PATH": f"{bin_}:{os.environ['PATH']}",
        "PYTHON": str(bin_ / "fakepython"),
        "FAKE_NCPU": str(ncpu),
        "STUB_LOG": str(log),
        "FAIL_ON": "no-such-word",
        **env,
    }
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / script), *args], env=full,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    return done, log.read_text().splitlines()


def _policies(tmp_path: Path, n: int) -> list[str]:
    out = []
    for i in range(n):
        d = tmp_path / f"pol{i}"
        d.mkdir()
        (d / "policy.json").write_text("{}")
        out.append(str(d))
    return out


@pytest.mark.parametrize(("ncpu", "parallel"), [(8, False), (9, False), (10, True), (16, True)])
def test_demo_profiles_in_parallel_only_on_cores_that_exist(tmp_path, ncpu, parallel) -> None:
    done, log = _run(tmp_path, "runtime_demo.sh", [str(tmp_path / "out"), *_policies(tmp_path, 1)],
                     ncpu, SEEDS="0")  # fmt: skip
    assert done.returncode == 0, done.stderr
    pinned = sorted(x for x in log if x.startswith("taskset"))  # in any order: side by side
    assert pinned == (["taskset 1", "taskset 3", "taskset 5", "taskset 7", "taskset 9"]
                      if parallel else [])  # fmt: skip
    assert sum("edgesplit.cost_models.profile " in x for x in log) == 5
    assert sum("edgesplit.runtime demo" in x for x in log) == 1


def test_demo_refuses_settings_it_cannot_honour_before_any_work(tmp_path) -> None:
    out = str(tmp_path / "out")
    done, log = _run(tmp_path, "runtime_demo.sh", [out, *_policies(tmp_path, 2)], 16,
                     PAIRED="1", SEEDS="0")  # fmt: skip
    assert done.returncode == 2 and "PAIRED=1 needs a seed per policy" in done.stderr
    assert log == []  # nothing was profiled first
    done, log = _run(tmp_path, "runtime_demo.sh", [out, str(tmp_path / "pol0")], 8,
                     PARALLEL_PROFILES="1")  # fmt: skip
    assert done.returncode == 2 and "need 10 cores; this machine has 8" in done.stderr
    assert log == []


def test_demo_passes_the_clock_and_the_arrival_scale_and_refuses_an_unknown_clock(tmp_path):
    out = str(tmp_path / "out")
    pol = _policies(tmp_path, 1)
    done, log = _run(tmp_path, "runtime_demo.sh", [out, *pol], 8, SEEDS="0")
    assert done.returncode == 0, done.stderr
    demo = [x for x in log if "edgesplit.runtime demo" in x]
    assert len(demo) == 1 and "--clock slot" in demo[0] and "--arrival-scale 1 " in demo[0]
    done, log = _run(tmp_path, "runtime_demo.sh", [out, *pol], 8, SEEDS="0", CLOCK="arrival",
                     ARRIVAL_SCALE="1.5")  # fmt: skip
    demo = [x for x in log if "edgesplit.runtime demo" in x]
    assert "--clock arrival" in demo[-1] and "--arrival-scale 1.5 " in demo[-1]
    (tmp_path / "again").mkdir()
    done, log = _run(tmp_path / "again", "runtime_demo.sh", [out, *pol], 8, CLOCK="tick")
    assert done.returncode == 2 and "CLOCK: 'tick': expected slot or arrival" in done.stderr
    assert log == []  # refused before any work


def test_a_failed_parallel_profile_fails_the_demo_script(tmp_path) -> None:
    done, log = _run(tmp_path, "runtime_demo.sh", [str(tmp_path / "out"), *_policies(tmp_path, 1)],
                     16, FAIL_ON="alexnet")  # fmt: skip
    assert done.returncode == 1 and "1 profile(s) failed" in done.stdout
    assert sum("edgesplit.cost_models.profile " in x for x in log) == 5  # all ran to the end
    assert not any("edgesplit.runtime demo" in x for x in log)


@pytest.mark.parametrize(("ncpu", "parallel"), [(12, False), (13, False), (14, True)])
def test_validate_runs_in_parallel_only_on_cores_that_exist(tmp_path, ncpu, parallel) -> None:
    nets = "resnet18 mobilenet_v2 alexnet resnet50 vgg16 squeezenet"  # six: cores 2 to 13
    done, log = _run(tmp_path, "runtime_validate.sh", [str(tmp_path / "out")], ncpu,
                     NETWORKS=nets, ENGINES="onnxruntime", RATES="5")  # fmt: skip
    assert done.returncode == 0, done.stderr
    pinned = sorted({x for x in log if x.startswith("taskset")})
    assert pinned == (sorted(f"taskset {2 * i + 2},{2 * i + 3}" for i in range(6))
                      if parallel else [])  # fmt: skip
    assert sum("edgesplit.runtime validate" in x for x in log) == 6
    done, log = _run(tmp_path, "runtime_validate.sh", [str(tmp_path / "out2")], 12,
                     NETWORKS=nets, PARALLEL="1")  # fmt: skip
    assert done.returncode == 2 and "need 14 cores; this machine has 12" in done.stderr


def test_a_failed_parallel_network_fails_the_validate_script(tmp_path) -> None:
    done, log = _run(tmp_path, "runtime_validate.sh", [str(tmp_path / "out")], 16,
                     ENGINES="onnxruntime", RATES="5", FAIL_ON="alexnet")  # fmt: skip
    assert done.returncode == 1 and "1 network(s) failed" in done.stdout
    assert sum("edgesplit.runtime validate" in x for x in log) == 4  # the others finished
