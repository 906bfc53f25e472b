"""Decisions on the environment's slot clock: a deployed policy run as it was trained.

The environment decides at slot boundaries: a task arriving in slot ``t`` joins its
device's queue at the end of that slot (or is dropped if the queue holds
``queue_capacity`` tasks), and each slot the task at the head of each device's queue is
decided, all the slot's tasks in **one joint decision** (the policy sees every device's
pending task and shares an access point's bandwidth and a server's compute between them).
The decided task's head runs when the device has finished the heads decided before it
(its backlog); the device does not wait for an offloaded task's result before the next
head.

A runtime that asks the scheduler whenever a task reaches the head of its queue (the
runtime's ``arrival`` clock) runs a trained policy on states it never saw: a task decided
alone, a device that waits for results. The ``slot`` clock runs it as trained, and what it
measures is then comparable task by task with the slotted simulator's latency from the
task's arrival (:attr:`edgesplit.sim.replay.Replay.from_arrival_s`).

This module holds the queue discipline (:func:`slot_schedule`: which slot decides each of
a device's tasks, which are dropped; a function of the arrivals alone, the same as
:func:`edgesplit.sim.replay.replay`'s) and a device's line of heads (:class:`HeadLine`:
heads in the order decided, one at a time, with the backlog a snapshot reports).

>>> slots, dropped, queued = slot_schedule([0.01, 0.02, 0.03, 0.35], slot_s=0.1, capacity=2)
>>> slots.tolist(), dropped.tolist(), queued.tolist()
([1, 2, -1, 4], [False, False, True, False], [2, 1, 0, 1])
"""

from __future__ import annotations

import math
import numbers
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["HeadLine", "slot_schedule"]


def slot_schedule(
    arrival_s: Sequence[float] | np.ndarray, slot_s: float, capacity: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One device's tasks on the slot clock (arrivals in seconds from the clock's zero,
    non-decreasing): per task the slot that decides it (-1 if dropped), whether it was
    dropped (the queue held ``capacity`` tasks at the end of its arrival slot), and the
    queue length its decision sees (this task included; 0 if dropped).

    Raises ``ValueError`` naming the field and the value for a slot that is not a positive
    number, a capacity below 1, or arrivals that are negative, not finite or out of order.
    """
    if not (_real(slot_s) and math.isfinite(slot_s) and slot_s > 0):
        raise ValueError(f"slot_s = {slot_s!r}: expected a positive number of seconds")
    if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity < 1:
        raise ValueError(f"capacity = {capacity!r}: expected an integer >= 1")
    t_arr = np.asarray(arrival_s, dtype=float).reshape(-1)
    bad = ~np.isfinite(t_arr) | (t_arr < 0)
    if bad.any():
        k = int(np.argmax(bad))
        raise ValueError(f"arrival_s[{k}] = {float(t_arr[k])!r}: expected a finite time >= 0")
    if np.any(np.diff(t_arr) < 0):
        k = int(np.argmax(np.diff(t_arr) < 0)) + 1
        raise ValueError(f"arrival_s[{k}] = {float(t_arr[k])!r}: arrivals must be in order")
    arr_slot = np.floor(t_arr / slot_s).astype(np.int64)  # the replay's own bucketing
    k_n = len(t_arr)
    slot = np.full(k_n, -1, dtype=np.int64)
    queued = np.zeros(k_n, dtype=np.int64)
    dropped = np.zeros(k_n, dtype=bool)
    queue: deque[int] = deque()
    t, p = 0, 0
    while p < k_n or queue:
        if not queue:
            t = max(t, int(arr_slot[p]))  # nothing to decide until the next arrival
        if queue:  # the head of the queue is decided this slot
            k = queue.popleft()
            slot[k], queued[k] = t, len(queue) + 1
        while p < k_n and arr_slot[p] == t:  # this slot's arrivals join, or drop
            if len(queue) < capacity:
                queue.append(p)
            else:
                dropped[p] = True
            p += 1
        t += 1
    return slot, dropped, queued


def _real(x: Any) -> bool:
    """A real number (numpy's included), not a bool."""
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


class HeadLine:
    """A device's heads, one at a time in the order decided, on a thread of their own.

    ``run(job)`` is called for each job :meth:`put` (with its expected head seconds, what
    the backlog counts: the device's own estimate, the table's time); :meth:`backlog_s` is
    the head work still ahead of a new decision, as the environment's device backlog:
    the rest of the running head's expected time plus every queued head's.

    >>> done = []
    >>> line = HeadLine(lambda job: done.append(job))
    >>> line.put("a", 0.0); line.put("b", 0.0); line.close()
    >>> done
    ['a', 'b']
    """

    def __init__(self, run: Callable[[Any], None], clock: Callable[[], float] = time.perf_counter):
        self._run, self.clock = run, clock
        self._jobs: deque[tuple[Any, float]] = deque()
        self._cond = threading.Condition()
        self._running_end: float | None = None  # expected end of the running head
        self._closed = False
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def put(self, job: Any, head_s: float) -> None:
        """Queue a decided task's head (``head_s``: its expected seconds, >= 0).

        Raises ``ValueError`` naming ``head_s`` and its value if it is not a finite number
        >= 0, and ``RuntimeError`` once the line is closed (the job would never run)."""
        if not (_real(head_s) and math.isfinite(head_s) and head_s >= 0):
            raise ValueError(f"head_s = {head_s!r}: expected a finite number of seconds >= 0")
        with self._cond:
            if self._closed:
                raise RuntimeError("HeadLine.put: the line is closed")
            self._jobs.append((job, float(head_s)))
            self._cond.notify()

    def backlog_s(self) -> float:
        """Expected head seconds still ahead of a task decided now."""
        with self._cond:
            now = self.clock()
            running = max(self._running_end - now, 0.0) if self._running_end is not None else 0.0
            return running + sum(h for _, h in self._jobs)

    def close(self) -> None:
        """Run what is queued, then stop; re-raises the first error a job raised."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()
        if self.errors:
            raise self.errors[0]

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if not self._jobs:
                    return
                job, head_s = self._jobs.popleft()
                self._running_end = self.clock() + head_s
            try:
                self._run(job)
            except BaseException as e:  # kept for close()
                self.errors.append(e)
            finally:
                with self._cond:
                    self._running_end = None
