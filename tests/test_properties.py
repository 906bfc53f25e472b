"""Property-based tests over random scenarios and random actions (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgesplit.envs.gym_env import SplitOffloadEnv
from edgesplit.sim.encoding import ActionError

NETWORKS = ["alexnet", "vgg16", "resnet18", "resnet50", "mobilenet_v2"]
DEVICE_CLASSES = ["rpi4", "jetson_nano", "jetson_orin_nano", "x86_cpu_1t"]
SERVER_CLASSES = ["edge_t4", "x86_cpu_1t", "jetson_orin_nano", "cloud_a100"]
LINKS = ["hsdpa_3g", "lte", "nr_5g", "wifi", "trace_synthetic_3g"]


@st.composite
def scenarios(draw) -> dict:
    n_srv = draw(st.integers(1, 3))
    servers = [
        {"name": f"s{j}", "device_class": draw(st.sampled_from(SERVER_CLASSES))}
        for j in range(n_srv)
    ]
    nets = draw(st.lists(st.sampled_from(NETWORKS), min_size=1, max_size=3, unique=True))
    apps = [{"network": n, "deadline_s": draw(st.floats(0.02, 2.0))} for n in nets]
    devices = []
    for i in range(draw(st.integers(1, 4))):
        reach = draw(st.lists(st.integers(0, n_srv - 1), min_size=1, max_size=n_srv, unique=True))
        devices.append(
            {
                "name": f"d{i}",
                "device_class": draw(st.sampled_from(DEVICE_CLASSES)),
                "home": f"s{reach[0]}",
                "links": {f"s{j}": draw(st.sampled_from(LINKS)) for j in reach},
                "arrival_rate_hz": draw(st.floats(0.0, 30.0)),
                "apps": {n: draw(st.floats(0.1, 5.0)) for n in nets},
            }
        )
    return {
        "name": "random",
        "slot_s": draw(st.sampled_from([0.02, 0.1, 0.5])),
        "horizon": draw(st.integers(1, 30)),
        "queue_capacity": draw(st.integers(1, 6)),
        "weight_levels": draw(st.lists(st.floats(0.05, 1.0), min_size=1, max_size=3, unique=True)),
        "applications": apps,
        "servers": servers,
        "cloud": draw(st.sampled_from([None, {"device_class": "cloud_a100"}])),
        "devices": devices,
        "costs": {
            "max_candidates": draw(st.integers(2, 10)),
            "wire_dtype": draw(st.sampled_from(["float32", "float16", "int8"])),
            "input_compression": draw(st.floats(1.0, 20.0)),
        },
    }


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sc=scenarios(),
    mode=st.sampled_from(
        [("joint", "multidiscrete"), ("joint", "continuous"), ("sequential", "discrete")]
    ),
    seed=st.integers(0, 2**31 - 1),
)
def test_random_scenarios_and_actions(sc: dict, mode: tuple[str, str], seed: int) -> None:
    env = SplitOffloadEnv(scenario=sc, decision_mode=mode[0], action_type=mode[1])
    env.action_space.seed(seed)
    obs, info = env.reset(seed=seed)
    assert env.observation_space.contains(obs)
    for _ in range(40):
        obs, r, _term, trunc, info = env.step(env.action_space.sample())
        assert obs.dtype == np.float32 and np.isfinite(obs).all()
        assert env.observation_space.contains(obs), obs[(obs < 0) | (obs > 1)]
        assert np.isfinite(r)
        if "latency_s" in info:
            for k in ("latency_s", "energy_j", "head_s", "transfer_s", "tail_s", "cost"):
                assert np.isfinite(info[k]).all(), k
            has = info["has_task"]
            lat = info["latency_s"][has]
            floor = (info["head_s"] + info["transfer_s"] + info["tail_s"])[has]
            assert (lat >= floor - 1e-12).all()
            assert (info["energy_j"] >= 0).all()
        if trunc:
            obs, info = env.reset()


@settings(max_examples=60, deadline=None)
@given(
    dev=st.integers(0, 5),
    comp=st.integers(0, 3),
    bad=st.one_of(st.integers(-(2**31), -1), st.integers(100, 2**31)),
    seed=st.integers(0, 1000),
)
def test_out_of_range_multidiscrete_names_device_and_value(
    dev: int, comp: int, bad: int, seed: int
) -> None:
    env = _ENVS["multidiscrete"]
    env.reset(seed=seed)
    env.action_space.seed(seed)
    a = env.action_space.sample().astype(np.int64)
    a[dev * 4 + comp] = bad
    name = env.core.tables.device_names[dev]
    try:
        env.step(a)
    except ActionError as e:
        assert name in str(e) and str(bad) in str(e)
    else:  # pragma: no cover - the assertion is the test
        raise AssertionError("no ActionError")


@settings(max_examples=60, deadline=None)
@given(
    dev=st.integers(0, 5),
    comp=st.integers(0, 5),
    bad=st.one_of(st.floats(1.001, 1e30), st.floats(-1e30, -1.001), st.just(float("nan"))),
)
def test_out_of_range_continuous_names_device_and_value(dev: int, comp: int, bad: float) -> None:
    env = _ENVS["continuous"]
    env.reset(seed=0)
    a = np.zeros(env.action_space.shape, dtype=np.float64)
    width = env.action_space.shape[0] // env.core.n_devices
    a[dev * width + comp] = bad
    name = env.core.tables.device_names[dev]
    try:
        env.step(a)
    except ActionError as e:
        assert name in str(e) and str(np.float64(bad)) in str(e)
    else:  # pragma: no cover
        raise AssertionError("no ActionError")


_ENVS = {
    "multidiscrete": SplitOffloadEnv(scenario="default"),
    "continuous": SplitOffloadEnv(scenario="default", action_type="continuous"),
}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sc=scenarios(), seed=st.integers(0, 2**31 - 1), num_envs=st.integers(1, 3))
def test_backends_agree_on_random_scenarios(sc: dict, seed: int, num_envs: int) -> None:
    """The compiled step equals the numpy reference on any valid scenario, not only the
    shipped ones (state and observations exactly, floats to 1e-12)."""
    from edgesplit.sim.core import Core
    from edgesplit.sim.scenario import load_scenario

    scen = load_scenario(sc)
    ref, fast = Core(scen, num_envs, backend="numpy"), Core(scen, num_envs, backend="numba")
    keys = np.random.default_rng(seed).integers(1, 2**63, num_envs).astype(np.uint64)
    ref.reset(keys)
    fast.reset(keys)
    rng = np.random.default_rng(seed)
    ta = ref.tables
    for step in range(25):
        np.testing.assert_array_equal(fast.observe(), ref.observe())
        if step % 2:
            act = rng.integers(0, ta.action_nvec(), size=(num_envs, ta.n_devices, 4))
            kind = "multidiscrete"
        else:
            act = rng.uniform(-1, 1, size=(num_envs, ta.n_devices, ta.n_targets + 3))
            kind = "continuous"
        ra, rb = ref.step_action(act, kind), fast.step_action(act, kind)
        for name in ra.__dataclass_fields__:
            x, y = getattr(ra, name), getattr(rb, name)
            if x.dtype.kind == "f":
                np.testing.assert_allclose(y, x, rtol=1e-12, atol=1e-15, err_msg=name)
            else:
                np.testing.assert_array_equal(y, x, err_msg=name)
        for s in ("t", "qapp", "qarr", "qhead", "qlen", "dev_backlog", "srv_backlog"):
            np.testing.assert_array_equal(getattr(fast.state, s), getattr(ref.state, s), err_msg=s)
        if ref.truncated.any():
            mask = ref.truncated.copy()
            ref.reset(keys + np.uint64(step), mask)
            fast.reset(keys + np.uint64(step), mask)
