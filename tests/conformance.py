"""PettingZoo's conformance suites on one configuration: the set ``tests/test_envs.py`` runs
on every shipped scenario, shared by the tests of other configurations
(``from conformance import pettingzoo_suites``)."""

from __future__ import annotations

import functools
import types
from typing import Any

from pettingzoo.test import (
    api_test,
    max_cycles_test,
    parallel_api_test,
    parallel_seed_test,
    state_test,
)


def pettingzoo_suites(pz: types.ModuleType, **kw: Any) -> None:
    """PettingZoo's parallel API, seed, AEC API, max-cycles and state tests on
    ``pz.parallel_env(**kw)`` and ``pz.env(**kw)``."""
    parallel_api_test(pz.parallel_env(**kw), num_cycles=50)
    parallel_seed_test(functools.partial(pz.parallel_env, **kw), num_cycles=50)
    api_test(pz.env(**kw), num_cycles=20)
    mod = types.SimpleNamespace(
        parallel_env=functools.partial(pz.parallel_env, **kw),
        env=functools.partial(pz.env, **kw),
    )
    max_cycles_test(mod)
    state_test(pz.env(**kw), pz.parallel_env(**kw))
