"""EdgeSplit edge scheduler: serves exported policies (numpy + onnxruntime, no torch).

>>> from edgesplit.scheduler import Scheduler, load_policy  # doctest: +SKIP
>>> sched = Scheduler(load_policy("runs/ppo-default-seed0/policy"))  # doctest: +SKIP
>>> sched.decide({"devices": {...}})  # doctest: +SKIP

``python -m edgesplit.scheduler serve --policy DIR`` runs the HTTP service
(:mod:`edgesplit.scheduler.server`, Starlette on uvicorn: the ``scheduler`` extra);
``python -m edgesplit.scheduler decide --policy DIR request.json`` answers one request from a
file. Errors: :class:`SchedulerError` and its two kinds, :class:`RequestError` (a malformed
request) and :class:`PolicyError` (a missing, malformed or tampered policy directory).
"""

from .decide import Scheduler
from .errors import PolicyError, RequestError, SchedulerError
from .policy import LoadedPolicy, load_policy

__all__ = [
    "LoadedPolicy",
    "PolicyError",
    "RequestError",
    "Scheduler",
    "SchedulerError",
    "load_policy",
]
