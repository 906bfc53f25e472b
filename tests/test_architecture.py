"""The project's import rules, checked on the source (issue 7's "done when"):

- no module imports another module's underscore-prefixed names (or an underscore module);
- no import cycle among the project's modules (imports inside functions count; imports
  under ``if TYPE_CHECKING:`` do not, they never run);
- the deploy path is numpy-only: importing ``edgesplit.scheduler`` (or the simulator) loads
  neither gymnasium, pettingzoo, torch, numba nor stable-baselines3.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the top-level folders that install as edgesplit.<name> (pyproject's package-dir)
PACKAGES = ("cost_models", "sim", "envs", "agents", "scheduler", "runtime")
HEAVY = ("gymnasium", "pettingzoo", "torch", "numba", "stable_baselines3")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        base = ROOT / pkg
        if not base.is_dir():
            continue
        for f in base.rglob("*.py"):
            parts = f.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out["edgesplit." + ".".join(parts)] = f
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(name: str, node: ast.ImportFrom) -> str:
    """The absolute module of a ``from ... import`` in module ``name``."""
    if not node.level:
        return node.module or ""
    base = name.split(".") if _is_package(name) else name.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                lines.update(range(sub.lineno, (sub.end_lineno or sub.lineno) + 1))
    return lines


def _imports(name: str) -> list[tuple[str, str | None, int]]:
    """(module, imported name or None, line) of every project import in module ``name``."""
    tree = ast.parse(MODULES[name].read_text())
    skip = _type_checking_lines(tree)
    out = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = _resolve(name, node)
            for a in node.names:
                sub = f"{mod}.{a.name}"
                if sub in MODULES:  # `from package import module`
                    out.append((sub, None, node.lineno))
                else:
                    out.append((mod, a.name, node.lineno))
    return [(m, n, ln) for m, n, ln in out if m.startswith("edgesplit.")]


def test_the_module_list_is_the_installed_layout() -> None:
    assert "edgesplit.sim.core" in MODULES and "edgesplit.envs.gym_env" in MODULES
    assert len(MODULES) > 40


def test_no_module_imports_another_modules_private_names() -> None:
    bad = []
    for name in MODULES:
        for mod, imported, line in _imports(name):
            segments = mod.split(".")[1:] + ([imported] if imported else [])
            private = [s for s in segments if s.startswith("_") and not s.startswith("__")]
            if private and mod != name:
                bad.append(f"{name}:{line} imports {mod} {imported}")
    assert not bad, "\n".join(bad)


def test_no_import_cycles() -> None:
    graph = {
        name: sorted({m for m, _, _ in _imports(name) if m in MODULES and m != name})
        for name in MODULES
    }
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_the_checks_can_fail(tmp_path) -> None:
    """The rules above find a private import and a cycle when there is one."""
    global MODULES
    saved = MODULES
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from edgesplit.sim.b import _x\n")
    b.write_text("import edgesplit.sim.a\n_x = 1\n")
    MODULES = {"edgesplit.sim.a": a, "edgesplit.sim.b": b}
    try:
        with pytest.raises(AssertionError, match=re.escape("imports edgesplit.sim.b _x")):
            test_no_module_imports_another_modules_private_names()
        with pytest.raises(AssertionError, match=re.escape("edgesplit.sim.a -> edgesplit.sim.b")):
            test_no_import_cycles()
    finally:
        MODULES = saved


@pytest.mark.parametrize("module", ["edgesplit.scheduler", "edgesplit.sim.core"])
def test_the_deploy_path_imports_no_rl_library(module: str) -> None:
    code = f"import sys, {module}\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stdout
