"""EdgeSplit edge scheduler: serves exported policies (numpy + onnxruntime, no torch).

>>> from edgesplit.scheduler import Scheduler, load_policy  # doctest: +SKIP
>>> sched = Scheduler(load_policy("runs/ppo-default-seed0/policy"))  # doctest: +SKIP
>>> sched.decide({"devices": {...}})  # doctest: +SKIP

``python -m edgesplit.scheduler serve --policy DIR`` runs the HTTP service
(:mod:`edgesplit.scheduler.server`); ``python -m edgesplit.scheduler decide --policy DIR
request.json`` answers one request from a file.
"""

from .decide import RequestError, Scheduler
from .policy import LoadedPolicy, PolicyError, load_policy

__all__ = ["LoadedPolicy", "PolicyError", "RequestError", "Scheduler", "load_policy"]
