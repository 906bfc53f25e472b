"""Cut a traced network into a head and a tail at a topological-prefix candidate (torch).

The head of candidate ``k`` runs the first ``k`` nodes of the network's ``torch.fx`` graph
(the profile's node order, :func:`edgesplit.cost_models.graph.trace_network`) and returns
every value that crosses the cut, in the candidate's ``cut`` order; the tail takes those
values and returns the network's result. Both are ``fx.GraphModule`` objects sharing the
original module's parameters, so running them is torch eager, node for node what the
profiler timed.

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).eval()
>>> s = Splitter(net, (1, 4))
>>> head, tail = s.split(2)
>>> s.cut_names(2)
('_1',)
>>> x = torch.randn(1, 4)
>>> bool(torch.allclose(tail(*head(x)), net(x)))
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import fx, nn

from edgesplit.cost_models.graph import TracedNetwork, trace_network
from edgesplit.cost_models.network import INPUT

__all__ = ["Splitter"]


class Splitter:
    """Heads and tails of one network at any of its prefix candidates.

    Parameters
    ----------
    module
        A ``torch.fx``-traceable module with one tensor input, in eval mode.
    input_shape
        Shape of its input, batch included.
    """

    def __init__(self, module: nn.Module, input_shape: Sequence[int]) -> None:
        self.module = module
        self.traced: TracedNetwork = trace_network(module, input_shape)
        gm = self.traced.graph_module
        self._gm = gm
        self._order = list(gm.graph.nodes)
        self._placeholder = next(n for n in self._order if n.op == "placeholder")
        self._output = next(n for n in self._order if n.op == "output")
        self._index = {n.name: i for i, n in enumerate(self.traced.nodes)}

    def _key(self, node: fx.Node) -> str:
        return INPUT if node is self._placeholder else node.name

    def cut_names(self, k: int) -> tuple[str, ...]:
        """Names of the values that cross the cut of candidate ``k`` (in order)."""
        return self.traced.candidates[k].cut

    def split(self, k: int) -> tuple[fx.GraphModule, fx.GraphModule]:
        """Head and tail of candidate ``k``.

        The head takes the network input and returns a tuple of the cut values; the tail
        takes the cut values as positional arguments (same order) and returns the network's
        result (the original output structure).

        Raises
        ------
        IndexError
            If ``k`` is not a candidate index.
        """
        n = len(self.traced.nodes)
        if not 0 <= k <= n:
            raise IndexError(f"candidate index {k} out of range [0, {n}]")
        head_nodes = {node.name for node in self.traced.fx_nodes[:k]}
        tail_nodes = {node.name for node in self.traced.fx_nodes[k:]}
        cut = self.cut_names(k)
        head = self._subgraph([INPUT], head_nodes, list(cut), result=False)
        tail = self._subgraph(list(cut), tail_nodes, [], result=True)
        return head, tail

    def _subgraph(
        self, inputs: list[str], include: set[str], outputs: list[str], *, result: bool
    ) -> fx.GraphModule:
        g = fx.Graph()
        env: dict[str, fx.Node] = {}
        for name in inputs:
            env[name] = g.placeholder(_safe(name))

        def lookup(node: fx.Node) -> fx.Node:
            key = self._key(node)
            if key not in env:
                if node.op == "get_attr":
                    env[key] = g.get_attr(str(node.target))
                else:  # pragma: no cover - a cut that misses a value: a bug in the cut
                    raise KeyError(f"value {key!r} is neither computed here nor a cut input")
            return env[key]

        for node in self._order:
            if node.op in ("placeholder", "output", "get_attr"):
                continue
            if node.name in include:
                env[node.name] = g.node_copy(node, lookup)
        if result:
            g.output(fx.node.map_arg(self._output.args[0], lookup))
        else:
            g.output(tuple(env[name] for name in outputs))
        g.lint()
        return fx.GraphModule(self._gm, g)


def _safe(name: str) -> str:
    return name if name.isidentifier() else f"v_{name}"


def state_arrays(module: nn.Module) -> dict[str, Any]:
    """The module's state dict as numpy arrays (for a pickle-free ``.npz``)."""
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def load_state_arrays(module: nn.Module, arrays: Any) -> None:
    """Load a state dict saved by :func:`state_arrays` (an ``np.load`` result) into ``module``."""
    state = {k: torch.from_numpy(arrays[k].copy()) for k in arrays.files}
    module.load_state_dict(state, strict=True)
