"""The scheduler's own error types.

Everything the scheduler refuses is a :class:`SchedulerError`: a malformed request is a
:class:`RequestError` (the HTTP service answers it 400), a policy directory that is missing,
malformed or tampered with is a :class:`PolicyError` (refused at load). Both name the field
and the value; a :class:`PolicyError` also names the file.

>>> from edgesplit.scheduler import PolicyError, RequestError, SchedulerError
>>> err = RequestError("devices.pi_0.backlog_s", -1, "must be >= 0")
>>> isinstance(err, SchedulerError), isinstance(err, ValueError)
(True, True)
>>> str(err)
"request: field 'devices.pi_0.backlog_s' = -1: must be >= 0"
>>> str(PolicyError("policy.json", "tables.home[0]", 99, "no such target"))
'policy.json: tables.home[0]: no such target (got 99)'
"""

from __future__ import annotations

from typing import Any

from edgesplit.cost_models.errors import FieldError, short_repr

__all__ = ["PolicyError", "RequestError", "SchedulerError"]


class SchedulerError(Exception):
    """Base of every error the scheduler raises on purpose (bad requests, bad policies)."""


class RequestError(SchedulerError, ValueError):
    """A scheduling request is malformed: ``field`` is its path, ``value`` the culprit.

    Parameters
    ----------
    field
        Path of the offending field in the request, e.g. ``devices.pi_0.backlog_s``.
    value
        The offending value (``None`` for a missing field).
    problem
        What is wrong with it.
    """

    def __init__(self, field: str, value: Any, problem: str) -> None:
        self.field, self.value, self.problem = field, value, problem
        super().__init__(f"request: field {field!r} = {short_repr(value)}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across processes
        return (type(self), (self.field, self.value, self.problem))


class PolicyError(FieldError, SchedulerError):
    """A policy directory is missing, malformed, of an unknown version, inconsistent or
    tampered with; ``file``, ``field`` and ``value`` say where and what."""
