"""The graph of a network: torch.fx nodes, their costs, and every topological-prefix split.

:func:`trace_network` turns any traceable ``nn.Module`` into the node list and split
candidates of a network profile (:mod:`edgesplit.cost_models.network`): the nodes of its
``torch.fx`` graph in topological order (placeholders, outputs and ``get_attr`` constants
left out), each with its FLOPs (``torch.utils.flop_counter``, counted by running the node
alone), the bytes of the parameters and buffers it reads, and the sizes of what it reads and
writes; and one candidate per prefix ``k = 0..n`` with every value that crosses the cut.

A value crosses the cut after ``k`` nodes when it is produced in the head (the network input
counts as produced before node 0) and consumed in the tail or returned as the result. In a
chain that is one tensor; inside a residual block it is two (the block's input, kept for
the shortcut, and the branch's current tensor). Candidate 0 sends the input; candidate ``n``
sends the result.

Tracing on the ``meta`` device costs no arithmetic, so FLOPs of large networks are cheap:

>>> from edgesplit.cost_models import zoo
>>> net = trace_network(zoo.resnet18(device="meta"), (1, 3, 224, 224))
>>> round(net.macs / 1e9, 2), len(net.candidates) == len(net.nodes) + 1
(1.81, True)
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn
from torch.utils.flop_counter import FlopCounterMode

from edgesplit.cost_models.network import INPUT, Candidate, Node, crossing_values

__all__ = ["FLOAT32_BYTES", "TracedNetwork", "numel_of", "op_name", "trace_network"]

FLOAT32_BYTES = 4
"""Bytes per element used for every tensor size in a profile (the contract counts float32)."""

_MODULE_OPS: dict[type[nn.Module], str] = {
    nn.Conv1d: "conv1d",
    nn.Conv2d: "conv2d",
    nn.Conv3d: "conv3d",
    nn.ConvTranspose2d: "conv_transpose2d",
    nn.Linear: "linear",
    nn.BatchNorm1d: "batch_norm",
    nn.BatchNorm2d: "batch_norm",
    nn.BatchNorm3d: "batch_norm",
    nn.LayerNorm: "layer_norm",
    nn.GroupNorm: "group_norm",
    nn.ReLU: "relu",
    nn.ReLU6: "relu6",
    nn.Hardswish: "hardswish",
    nn.Hardsigmoid: "hardsigmoid",
    nn.SiLU: "silu",
    nn.GELU: "gelu",
    nn.Sigmoid: "sigmoid",
    nn.Tanh: "tanh",
    nn.MaxPool2d: "max_pool2d",
    nn.AvgPool2d: "avg_pool2d",
    nn.AdaptiveAvgPool2d: "adaptive_avg_pool2d",
    nn.AdaptiveMaxPool2d: "adaptive_max_pool2d",
    nn.Dropout: "dropout",
    nn.Flatten: "flatten",
    nn.Identity: "identity",
    nn.Softmax: "softmax",
}

_OPERATORS: dict[Any, str] = {
    operator.add: "add",
    operator.iadd: "add",
    operator.mul: "mul",
    operator.imul: "mul",
    operator.sub: "sub",
    operator.truediv: "div",
    operator.matmul: "matmul",
    operator.getitem: "getitem",
}


@dataclass(frozen=True, eq=False)
class TracedNetwork:
    """A traced network: its fx graph, profile nodes and split candidates.

    Attributes
    ----------
    graph_module
        The ``torch.fx.GraphModule`` traced from the module (shares its parameters).
    fx_nodes
        The fx nodes behind :attr:`nodes`, in the same order.
    nodes
        Profile nodes in topological order.
    candidates
        All ``len(nodes) + 1`` topological-prefix candidates.
    input_shape
        Shape of the single input the network was traced with.
    macs
        Multiply-accumulates, half the FLOPs that ``torch.utils.flop_counter`` counts.
    params
        Number of distinct parameters of the module.
    """

    graph_module: fx.GraphModule
    fx_nodes: tuple[fx.Node, ...]
    nodes: tuple[Node, ...]
    candidates: tuple[Candidate, ...]
    input_shape: tuple[int, ...]
    macs: int
    params: int


def numel_of(value: Any) -> int:
    """Elements in every tensor inside ``value`` (tensors, nested tuples, lists and dicts).

    Non-tensor values (the ints of ``x.size(0)``, ``None``) count zero.

    >>> numel_of((torch.zeros(2, 3), [torch.zeros(4)], 7))
    10
    """
    if isinstance(value, torch.Tensor):
        return int(value.numel())
    if isinstance(value, (tuple, list)):
        return sum(numel_of(v) for v in value)
    if isinstance(value, dict):
        return sum(numel_of(v) for v in value.values())
    return 0


def op_name(gm: fx.GraphModule, node: fx.Node) -> str:
    """A short, stable name for what ``node`` computes (``conv2d``, ``relu``, ``add``, ...).

    Modules map through a table of common layers (otherwise their lower-cased class name),
    functions to their ``__name__``, methods to the method name.
    """
    if node.op == "call_module":
        module = gm.get_submodule(str(node.target))
        for cls in type(module).__mro__:
            if cls in _MODULE_OPS:
                return _MODULE_OPS[cls]
        return type(module).__name__.lower()
    if node.op == "call_function":
        if node.target in _OPERATORS:
            return _OPERATORS[node.target]
        return str(getattr(node.target, "__name__", node.target)).removesuffix("_")
    return str(node.target).removesuffix("_")


def _state_bytes(module: nn.Module) -> int:
    tensors = {id(t): t for t in (*module.parameters(), *module.buffers())}
    return sum(int(t.numel()) * t.element_size() for t in tensors.values())


def _run_node(gm: fx.GraphModule, node: fx.Node, env: dict[fx.Node, Any]) -> Any:
    args = fx.node.map_arg(node.args, lambda n: env[n])
    kwargs = fx.node.map_arg(node.kwargs, lambda n: env[n])
    if node.op == "call_module":
        return gm.get_submodule(str(node.target))(*args, **kwargs)
    if node.op == "call_function":
        return node.target(*args, **kwargs)  # type: ignore[operator]
    if node.op == "call_method":
        self_obj, *rest = args
        return getattr(self_obj, str(node.target))(*rest, **kwargs)
    raise ValueError(f"node {node.name!r}: unsupported fx op {node.op!r}")


def trace_network(
    module: nn.Module,
    input_shape: Sequence[int],
    *,
    device: str | torch.device | None = None,
) -> TracedNetwork:
    """Trace ``module`` and compute its profile nodes and all prefix candidates.

    Parameters
    ----------
    module
        A ``torch.fx``-traceable module with a single tensor input. It is not modified
        (set it to eval mode first: tracing records the control flow it takes).
    input_shape
        Shape of the input, batch included, e.g. ``(1, 3, 224, 224)``.
    device
        Where to run the nodes while counting; defaults to the device of the module's first
        parameter (CPU if it has none). A module built on ``"meta"`` is counted without any
        arithmetic.

    Returns
    -------
    TracedNetwork
        Nodes, candidates, MACs and parameter count.

    Raises
    ------
    ValueError
        If the module has more or fewer than one input, or a node is named ``"input"``.
    """
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s <= 0 for s in shape):
        raise ValueError(f"input_shape must be positive integers, got {tuple(input_shape)!r}")
    if device is None:
        first = next(iter(module.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
    gm = fx.symbolic_trace(module)
    graph_nodes = list(gm.graph.nodes)
    placeholders = [n for n in graph_nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise ValueError(
            f"trace_network supports modules with exactly one input, got {len(placeholders)}"
        )
    (placeholder,) = placeholders
    (output_node,) = [n for n in graph_nodes if n.op == "output"]

    names: dict[fx.Node, str] = {placeholder: INPUT}
    env: dict[fx.Node, Any] = {}
    consts: dict[fx.Node, int] = {}  # get_attr node -> bytes of the constant
    fx_nodes: list[fx.Node] = []
    records: list[dict[str, Any]] = []
    with torch.no_grad():
        env[placeholder] = torch.randn(shape, device=device)
        for node in graph_nodes:
            if node.op in ("placeholder", "output"):
                continue
            if node.op == "get_attr":
                value = operator.attrgetter(str(node.target))(gm)
                env[node] = value
                consts[node] = (
                    int(value.numel()) * value.element_size()
                    if isinstance(value, torch.Tensor) else 0
                )  # fmt: skip
                continue
            if node.name == INPUT:
                raise ValueError(f"node name {INPUT!r} is reserved for the network input")
            with FlopCounterMode(display=False) as counter:
                value = _run_node(gm, node, env)
            env[node] = value
            producers = [p for p in node.all_input_nodes if p not in consts]
            param_bytes = sum(consts[p] for p in node.all_input_nodes if p in consts)
            if node.op == "call_module":
                param_bytes += _state_bytes(gm.get_submodule(str(node.target)))
            out_numel = numel_of(value)
            names[node] = node.name
            fx_nodes.append(node)
            records.append(
                {
                    "name": node.name,
                    "op": op_name(gm, node),
                    "inputs": tuple(names[p] for p in producers),
                    "flops": int(counter.get_total_flops()),
                    "param_bytes": int(param_bytes),
                    "input_bytes": FLOAT32_BYTES * sum(numel_of(env[p]) for p in producers),
                    "output_bytes": FLOAT32_BYTES * out_numel,
                    "output_numel": out_numel,
                }
            )
        numel = {INPUT: numel_of(env[placeholder])}
        numel.update({names[n]: numel_of(env[n]) for n in fx_nodes})
        result = [names[p] for p in output_node.all_input_nodes if p not in consts]

    nodes = tuple(Node(**r) for r in records)
    candidates = tuple(prefix_candidates(nodes, result, numel))
    params = sum(int(p.numel()) for p in {id(p): p for p in module.parameters()}.values())
    total_flops = sum(n.flops for n in nodes)
    return TracedNetwork(
        graph_module=gm,
        fx_nodes=tuple(fx_nodes),
        nodes=nodes,
        candidates=candidates,
        input_shape=shape,
        macs=total_flops // 2,
        params=params,
    )


def prefix_candidates(
    nodes: Sequence[Node], result: Sequence[str], numel: dict[str, int]
) -> list[Candidate]:
    """All topological-prefix candidates of ``nodes``.

    Parameters
    ----------
    nodes
        Nodes in topological order.
    result
        Names of the values the network returns (what the last candidate sends).
    numel
        Elements of every value by name, ``"input"`` included.

    Returns
    -------
    list of Candidate
        ``len(nodes) + 1`` candidates; index ``k`` runs the first ``k`` nodes on the device.
    """
    n = len(nodes)
    cuts = crossing_values(nodes, result)
    out: list[Candidate] = []
    for k, cut in enumerate(cuts):
        kind = "input" if k == 0 else ("output" if k == n else "intermediate")
        out.append(
            Candidate(
                index=k,
                name=INPUT if k == 0 else nodes[k - 1].name,
                n_head=k,
                cut=tuple(cut),
                cut_numel=sum(numel[v] for v in cut),
                kind=kind,
            )
        )
    return out
