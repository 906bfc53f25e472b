"""The error every cost-model file reports with: which file, which field, which value.

>>> raise FieldError("net.json", "nodes[3].flops", -5, "must be >= 0")
Traceback (most recent call last):
...
edgesplit.cost_models.errors.FieldError: net.json: nodes[3].flops: must be >= 0 (got -5)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["FieldError", "short_repr"]


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class FieldError(ValueError):
    """A file (profile, catalogue) is malformed.

    Parameters
    ----------
    file
        The file's path (or the name asked for).
    field
        Path of the offending field, e.g. ``nodes[3].flops``.
    value
        The offending value.
    problem
        What is wrong with it.
    """

    def __init__(self, file: str | Path, field: str, value: Any, problem: str) -> None:
        self.file = str(file)
        self.field = field
        self.value = value
        self.problem = problem
        super().__init__(f"{self.file}: {field}: {problem} (got {short_repr(value)})")

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across processes
        return (type(self), (self.file, self.field, self.value, self.problem))
