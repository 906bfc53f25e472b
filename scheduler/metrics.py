"""Prometheus metrics of the service (``GET /metrics``), with ``prometheus_client``.

=============================================  =========  =================================
metric                                         type       labels
=============================================  =========  =================================
``edgesplit_scheduler_requests_total``         counter    ``endpoint``, ``status``
``edgesplit_scheduler_decisions_total``        counter    ``source``: policy, neurosurgeon,
                                                          local (one per device with a task)
``edgesplit_scheduler_fallbacks_total``        counter    ``reason``: policy_failed,
                                                          unknown_application, no_profile
``edgesplit_scheduler_decision_seconds``       histogram  (time in ``Scheduler.decide``)
=============================================  =========  =================================

With several worker processes, ``prometheus_client``'s multiprocess mode adds up the
workers' values (the server sets ``PROMETHEUS_MULTIPROC_DIR`` before it starts them).

>>> from prometheus_client import CollectorRegistry
>>> m = Metrics(CollectorRegistry())
>>> m.record_answer({"fallback": None, "decisions": [
...     {"task": True, "source": "policy"}, {"task": True, "source": "local"}]}, 0.0004)
>>> body, _ = m.exposition()
>>> 'edgesplit_scheduler_fallbacks_total{reason="no_profile"} 1.0' in body.decode()
True
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

__all__ = ["LATENCY_BUCKETS", "Metrics"]

LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1,
    0.25, 1.0,
)  # fmt: skip
_REASON = {"neurosurgeon": "unknown_application", "local": "no_profile"}


class Metrics:
    """The service's metrics, registered in ``registry`` (one per app: several apps can live
    in one process), or, in multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set), written
    to the shared directory and read back by :meth:`exposition`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        reg = None if self.multiprocess else (registry or CollectorRegistry())
        self.registry = reg
        self.requests = Counter(
            "edgesplit_scheduler_requests",
            "HTTP requests answered, by endpoint and status code",
            ["endpoint", "status"],
            registry=reg,
        )
        self.decisions = Counter(
            "edgesplit_scheduler_decisions",
            "Decisions made for devices with a task, by where they came from",
            ["source"],
            registry=reg,
        )
        self.fallbacks = Counter(
            "edgesplit_scheduler_fallbacks",
            "Decisions not taken by the policy, by why: the policy failed on the request, the "
            "application is not one it was trained on (Neurosurgeon on its profile), or there "
            "is no profile either (run locally)",
            ["reason"],
            registry=reg,
        )
        self.latency = Histogram(
            "edgesplit_scheduler_decision_seconds",
            "Time spent in Scheduler.decide per answered request",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        # the labels that always exist (a scrape sees zeros rather than nothing), looked up
        # once: labels() costs more than inc()
        self._by_source = {s: self.decisions.labels(s) for s in ("policy", "neurosurgeon", "local")}
        self._by_reason = {
            r: self.fallbacks.labels(r) for r in ("policy_failed", *_REASON.values())
        }
        self._by_answer: dict[tuple[str, str], Any] = {}

    def count_request(self, endpoint: str, status: int) -> None:
        """Count one HTTP answer."""
        key = (endpoint, str(status))
        child = self._by_answer.get(key)
        if child is None:
            child = self._by_answer[key] = self.requests.labels(*key)
        child.inc()

    def record_answer(self, answer: dict[str, Any], seconds: float) -> None:
        """Count one answered ``decide``: its decisions by source and its fallbacks."""
        self.latency.observe(seconds)
        failed = answer.get("fallback") is not None
        if failed:
            self._by_reason["policy_failed"].inc()
        counts = {"policy": 0, "neurosurgeon": 0, "local": 0}
        for d in answer["decisions"]:
            if d["task"]:
                counts[d["source"]] += 1
        for src, k in counts.items():
            if k:
                self._by_source[src].inc(k)
                if src != "policy" and not (failed and src == "neurosurgeon"):
                    self._by_reason[_REASON[src]].inc(k)

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition format and its content type (all workers in multiprocess
        mode)."""
        reg = self.registry
        if reg is None:
            from prometheus_client import multiprocess

            reg = CollectorRegistry()
            multiprocess.MultiProcessCollector(reg)
        return generate_latest(reg), CONTENT_TYPE_LATEST
