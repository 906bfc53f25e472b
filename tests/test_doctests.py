"""Run the docstring examples of every installed edgesplit module (the docs cannot drift)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = [
    "edgesplit.cost_models",
    "edgesplit.sim",
    "edgesplit.envs",
    "edgesplit.agents",
    "edgesplit.scheduler",
    "edgesplit.runtime",
]
# every module is collected; none is skipped
SKIP: set[str] = set()


def _modules() -> list[str]:
    out = []
    for pkg in PACKAGES:
        mod = importlib.import_module(pkg)
        out.append(pkg)
        for info in pkgutil.walk_packages(mod.__path__, prefix=pkg + "."):
            if info.name.endswith("__main__") or info.name in SKIP:
                continue
            out.append(info.name)
    return sorted(out)


@pytest.mark.parametrize("name", _modules())
def test_doctests(name: str) -> None:
    mod = importlib.import_module(name)
    result = doctest.testmod(
        mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
