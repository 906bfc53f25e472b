"""The device: per task, ask for a decision, run the head, send the cut, time everything.

A :class:`Device` holds one application's partitions, an engine, and one
:class:`ServerEndpoint` per target it can reach (address, emulated or real link, the
access point whose rate the scheduler is told). For each task it

1. builds its entry of the scheduler's snapshot (:meth:`Device.snapshot_entry`: the pending
   task, queue length, backlog, and the link throughput it measured on its own recent
   transfers, the information model of the environment),
2. gets a decision from its decider: :class:`SchedulerDecider` (an
   :class:`edgesplit.scheduler.Scheduler` in process, or its HTTP service by URL) or
   :class:`FixedDecider` (one candidate and target, for experiments),
3. runs the head, encodes the cut tensors at the wire precision, sends them through the
   link to the chosen server, waits for the result,

With a :class:`~edgesplit.runtime.battery.Battery` (a device of a scenario with batteries),
every snapshot entry carries the battery's ``charge_j`` and ``energy_debt_j``; a head the
charge cannot pay for (the simulator's mask) is replaced by full offload of the raw input
(candidate 0) to the decision's target (for a local split, the scheduler's
``offload_target``, the policy's target output, else the device's home), as the simulator
replaces it (:attr:`TaskRecord.forced_offload`); the measured head and send pay their
energy.

It returns a :class:`TaskRecord` of head, transfer, server wait, tail and end-to-end
seconds (wall clock), with the CPU time of the head and of the tail beside them (on a
shared machine the wall clock also counts the time other processes held the core).
*Transfer* is everything between the head's end and the result's arrival that the server
did not spend on the task (encoding, the paced send, the round-trip delay, the
framing, the result's way back): what the simulator's ``bytes * 8 / rate + rtt`` stands for.

The device imports numpy, the partitions and (on the torch engine) torch; never
gymnasium, pettingzoo or stable-baselines3 (the scheduler in process needs its own
numpy + onnxruntime deployment path only).
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .battery import Battery
from .link import EmulatedLink, check_weight
from .parts import Partitions
from .wire import (
    ERROR,
    RESULT,
    STATUS,
    STATUS_REPLY,
    TASK,
    decode_tensors,
    encode_tensor,
    pack_frame,
    read_frame,
)

__all__ = [
    "Device",
    "FixedDecider",
    "PendingTask",
    "RemoteError",
    "SchedulerDecider",
    "ServerEndpoint",
    "TaskRecord",
]


class RemoteError(RuntimeError):
    """The server answered a task with an ERROR frame (its header is :attr:`header`)."""

    def __init__(self, header: dict[str, Any]) -> None:
        self.header = header
        super().__init__(f"server error: {header.get('error')}")


@dataclass
class ServerEndpoint:
    """A target the device can send to.

    Attributes
    ----------
    host, port
        The server's address.
    link
        The link to it (an :class:`~edgesplit.runtime.link.EmulatedLink`; unpaced with no
        delay for a real network).
    access_point
        The access point whose measured rate the scheduler is told (default: the target's
        own name, as in the shipped scenarios where each edge server is an access point).
    initial_mbps
        The rate reported before the device has measured any transfer (default: the
        pacer's rate, or its trace's mean, else 10).
    """

    host: str
    port: int
    link: EmulatedLink = field(default_factory=EmulatedLink)
    access_point: str | None = None
    initial_mbps: float | None = None


@dataclass
class TaskRecord:
    """What one task took, in seconds (``NaN`` where a part did not happen)."""

    task: int
    app: str
    candidate: str
    candidate_index: int
    target: str | None
    source: str
    wire_dtype: str
    bytes_sent: int
    decide_s: float
    head_s: float
    transfer_s: float
    send_s: float
    server_wait_s: float
    tail_s: float
    end_to_end_s: float
    server_backlog_s: float
    head_cpu_s: float = math.nan
    tail_cpu_s: float = math.nan
    requested_candidate: str = ""  # the decision's candidate (candidate unless forced)
    forced_offload: bool = False  # the battery could not pay for the requested head
    charge_j: float = math.nan  # the battery's charge reported for the decision (J)
    energy_j: float = 0.0  # the battery energy the task spent (J; 0 without a battery)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


class _Connection:
    """One TCP connection to a server, reopened when it drops."""

    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        self.addr, self.timeout_s = (host, port), timeout_s
        self.sock: socket.socket | None = None

    def get(self) -> socket.socket:
        if self.sock is None:
            s = socket.create_connection(self.addr, timeout=self.timeout_s)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock = s
        return self.sock

    def drop(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class _Pool:
    """Connections to one server, one per task in flight: a device whose tasks overlap
    (the next head runs while an earlier task's cut is on its way) never interleaves two
    frames on one socket."""

    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._free: list[_Connection] = []
        self._all: list[_Connection] = []
        self._lock = threading.Lock()

    def acquire(self) -> _Connection:
        with self._lock:
            if self._free:
                return self._free.pop()
            c = _Connection(self.host, self.port, self.timeout_s)
            self._all.append(c)
            return c

    def release(self, c: _Connection) -> None:
        with self._lock:
            self._free.append(c)

    def close(self) -> None:
        with self._lock:
            for c in self._all:
                c.drop()


@dataclass
class PendingTask:
    """A task whose head has run (:meth:`Device.start_task`) and whose cut, if it is
    offloaded, is still to be sent (:meth:`Device.finish_task`)."""

    task: int
    entry: dict[str, Any]
    decision: dict[str, Any]
    candidate: Any  # the partitions' candidate that ran (candidate 0 when forced)
    target: str | None
    requested: str
    forced: bool
    decide_s: float
    t1: float  # perf_counter when the decision was known (the head's start)
    t2: float  # perf_counter when the head ended
    head_cpu_s: float
    energy_j: float
    cut: list[np.ndarray]
    output: np.ndarray | None = None  # the network's output, once finished (float32)


class Device:
    """A device running heads and sending cut tensors (see the module docstring).

    Parameters
    ----------
    name
        The device's name in the scheduler's policy.
    parts
        The application's partitions (:func:`~edgesplit.runtime.parts.load_parts`).
    servers
        Target name -> :class:`ServerEndpoint`.
    decider
        ``decider(device, entry) -> {"split": candidate name, "target": name or None,
        "source": str}``, optionally with ``"bandwidth_weight"`` (default 1: the
        transfer's share of a shared access point, :class:`~.link.SharedPacer`); see
        :class:`FixedDecider` and :class:`SchedulerDecider`.
    engine
        ``"torch"``, ``"onnxruntime"``, or an object with the engines' ``head(name, image)``
        (e.g. the demo's head that waits a modelled device class's head time).
    wire_dtype
        Precision of intermediate tensors on the wire: ``float32``, ``float16`` or ``int8``.
    app
        The application's name for the scheduler and the server (default: the network's).
    timeout_s
        Socket time-out towards the servers.
    rate_ewma_weight
        Weight of the latest transfer in the link rate the device reports: the policy's
        scenario ``information.ewma_weight`` (default 1: the last transfer's rate, what
        environment v1 observes by default), so that the deployed policy sees the rate
        process it was trained on.
    battery
        The device's :class:`~edgesplit.runtime.battery.Battery` (None: mains-powered).
        Devices of one physical device (one per application) share one.
    home
        The target of a forced full offload when the decision runs locally (the scenario's
        ``home``; default: the first server).
    """

    def __init__(
        self,
        name: str,
        parts: Partitions,
        servers: Mapping[str, ServerEndpoint],
        decider: Callable[[Device, dict[str, Any]], dict[str, Any]],
        engine: Any = "torch",
        wire_dtype: str = "float32",
        app: str | None = None,
        timeout_s: float = 30.0,
        rate_ewma_weight: float = 1.0,
        battery: Battery | None = None,
        home: str | None = None,
    ) -> None:
        if not 0.0 < rate_ewma_weight <= 1.0:
            raise ValueError(f"rate_ewma_weight must be in (0, 1], got {rate_ewma_weight!r}")
        self.rate_ewma_weight = float(rate_ewma_weight)
        if wire_dtype not in ("float32", "float16", "int8"):
            raise ValueError(f"wire_dtype must be float32, float16 or int8, got {wire_dtype!r}")
        self.name, self.parts, self.decider = name, parts, decider
        self.app = app or parts.network
        self.servers = dict(servers)
        self.engine = parts.engine(engine) if isinstance(engine, str) else engine
        self.wire_dtype = wire_dtype
        self._conn = {t: _Pool(s.host, s.port, timeout_s) for t, s in self.servers.items()}
        self.rates_mbps: dict[str, float] = {}
        for t, s in self.servers.items():
            pacer = s.link.pacer
            pacer_rate = getattr(pacer, "rate_mbps", None) or getattr(pacer, "mean_mbps", None)
            ap = s.access_point or t
            self.rates_mbps[ap] = float(s.initial_mbps or pacer_rate or 10.0)
        self.server_backlog_s: dict[str, float] = dict.fromkeys(self.servers, 0.0)
        self.battery = battery
        if home is not None and home not in self.servers:
            raise ValueError(
                f"home = {home!r}: no server of that name (known: {sorted(self.servers)})"
            )
        self.home = home if home is not None else next(iter(self.servers), None)
        self._count = 0
        self._lock = threading.Lock()

    # -- the snapshot ------------------------------------------------------------------
    def snapshot_entry(
        self, waited_s: float = 0.0, queue_length: int = 1, backlog_s: float = 0.0
    ) -> dict[str, Any]:
        """This device's entry of a scheduler request, with a pending task (and, with a
        battery, its ``charge_j`` and ``energy_debt_j`` now)."""
        with self._lock:  # not while an offload's thread folds in its rate
            rates = dict(self.rates_mbps)
        entry = {
            "task": {"app": self.app, "waited_s": float(waited_s)},
            "queue_length": int(queue_length),
            "backlog_s": float(backlog_s),
            "link_mbps": rates,
        }
        if self.battery is not None:
            entry.update(self.battery.report())
        return entry

    def _measured(self, target: str, n_bytes: int, send_s: float) -> None:
        """Fold one transfer into the measured rate of the target's access point."""
        if send_s <= 0 or n_bytes < 4096:  # too small to say anything about the rate
            return
        ap = self.servers[target].access_point or target
        rate = n_bytes * 8 / send_s / 1e6
        w = self.rate_ewma_weight
        with self._lock:  # a device's offloads overlap: each transfer counts
            self.rates_mbps[ap] = w * rate + (1.0 - w) * self.rates_mbps[ap]

    def poll_backlogs(self) -> dict[str, float]:
        """Ask every server for its backlog (STATUS frames; no pacing, no delay)."""
        for t in self.servers:
            kind, header, _, _ = self._exchange(t, pack_frame(STATUS, {}), paced=False)
            if kind == STATUS_REPLY:
                self.server_backlog_s[t] = float(header["backlog_s"])
        return dict(self.server_backlog_s)

    # -- one task ----------------------------------------------------------------------
    def run_task(
        self,
        image: np.ndarray | None = None,
        waited_s: float = 0.0,
        queue_length: int = 1,
        backlog_s: float = 0.0,
    ) -> TaskRecord:
        """Decide, run the head, offload, and time it all (see the module docstring):
        :meth:`start_task` then :meth:`finish_task`.

        Raises
        ------
        RemoteError
            If the server answers with an ERROR frame.
        """
        return self.finish_task(self.start_task(image, waited_s, queue_length, backlog_s))

    def start_task(
        self,
        image: np.ndarray | None = None,
        waited_s: float = 0.0,
        queue_length: int = 1,
        backlog_s: float = 0.0,
        *,
        decision: dict[str, Any] | None = None,
        entry: dict[str, Any] | None = None,
        decide_s: float = 0.0,
    ) -> PendingTask:
        """Decide (unless ``decision`` is given: then ``entry`` is the snapshot it was made
        on and ``decide_s`` what it took, e.g. one joint request for a slot's tasks) and run
        the head; the battery gates the head and pays for it. Thread-safe: a device may
        run the next task's head while an earlier task is still being offloaded."""
        with self._lock:
            self._count += 1
            task = self._count
        if image is None:
            image = np.random.default_rng(task).integers(
                0, 256, self.parts.input_shape, dtype=np.uint8
            )
        if decision is None:
            t0 = time.perf_counter()
            entry = self.snapshot_entry(waited_s, queue_length, backlog_s)
            decision = self.decider(self, entry)
            t1 = time.perf_counter()
            decide_s = t1 - t0
        else:
            entry = (
                entry
                if entry is not None
                else self.snapshot_entry(waited_s, queue_length, backlog_s)
            )
            t1 = time.perf_counter()
        cand = self.parts.candidate(decision["split"])
        target = decision.get("target")
        bat = self.battery
        requested, forced = cand.name, False
        if bat is not None and not bat.affordable(self.app, cand.name):
            # the simulator's empty battery: full offload of the raw input, to the chosen
            # target; for a local split, the scheduler's offload_target (the policy's target
            # output, where the simulator sends it), else the home edge
            cand, forced = self.parts.by_index(0), True
            field = "target"
            if target is None:
                target, field = decision.get("offload_target"), "offload_target"
                target = target or self.home
            if target not in self.servers:  # before the battery counts it
                raise ValueError(f"decision {field} {target!r}: no server of that name "
                                 f"(known: {sorted(self.servers)})")  # fmt: skip
            bat.note_forced_offload()
        if cand.kind != "output" and target is not None and target not in self.servers:
            raise ValueError(f"decision target {target!r}: no server of that name "
                             f"(known: {sorted(self.servers)})")  # fmt: skip
        cpu = time.thread_time()
        cut = self.engine.head(cand.name, image)
        t2 = time.perf_counter()
        head_cpu = time.thread_time() - cpu
        energy = 0.0 if bat is None else bat.spend_head(t2 - t1)
        return PendingTask(task, entry, decision, cand, target, requested, forced, decide_s,
                           t1, t2, head_cpu, energy, list(cut))  # fmt: skip

    def finish_task(self, p: PendingTask) -> TaskRecord:
        """Offload a task whose head has run (nothing to do for one that runs whole on the
        device) and return its record.

        Raises
        ------
        RemoteError
            If the server answers with an ERROR frame.
        """
        cand, target, bat, nan = p.candidate, p.target, self.battery, math.nan
        extra = (p.requested, p.forced, float(p.entry.get("charge_j", nan)))
        head_s = p.t2 - p.t1
        if cand.kind == "output" or target is None:  # runs whole on the device
            p.output = np.asarray(p.cut[0]) if cand.kind == "output" else None
            self.last_output = p.output
            return TaskRecord(p.task, self.app, cand.name, cand.index, None,
                              p.decision.get("source", "?"), self.wire_dtype, 0, p.decide_s,
                              head_s, 0.0, 0.0, nan, 0.0, head_s, nan, p.head_cpu_s,
                              0.0, *extra, p.energy_j)  # fmt: skip
        metas, chunks = [], []
        for t, x in zip(cand.cut, p.cut, strict=True):
            meta, data = encode_tensor(t.name, np.asarray(x), self.wire_dtype)
            metas.append(meta)
            chunks.append(data)
        payload = b"".join(chunks)
        header = {"task": p.task, "app": self.app, "candidate": cand.name, "tensors": metas}
        frame = pack_frame(TASK, header, payload)
        weight = p.decision.get("bandwidth_weight", 1.0)
        check_weight(weight, "decision bandwidth_weight")
        kind, reply, data, sent = self._exchange(target, frame, paced=True, weight=float(weight))
        t3 = time.perf_counter()
        if kind != RESULT:
            raise RemoteError(reply)
        p.output = decode_tensors(reply["tensors"], data, "reply.tensors")[0]
        self.last_output = p.output
        send_s, link_s, send_end = sent
        # the link's own rate: through a shared access point the airtime served (the wall
        # time also holds the waits for the other devices, which the scheduler's model
        # of sharing adds by itself), else the wall time of the transfer
        self._measured(target, len(frame), send_s if link_s is None else link_s)
        # the radio is on for the paced send (at the device's share of the access point:
        # the simulator's air time), spent when the send ended
        radio = 0.0 if bat is None else bat.spend_radio(send_s, now=send_end)
        self.server_backlog_s[target] = float(reply["backlog_s"])
        wait, tail = float(reply["server_wait_s"]), float(reply["tail_s"])
        return TaskRecord(
            p.task, self.app, cand.name, cand.index, target, p.decision.get("source", "?"),
            self.wire_dtype, len(frame), p.decide_s, head_s, (t3 - p.t2) - wait - tail,
            send_s, wait, tail, t3 - p.t1, float(reply["backlog_s"]), p.head_cpu_s,
            float(reply.get("tail_cpu_s", nan)), *extra, p.energy_j + radio,
        )  # fmt: skip

    def _exchange(
        self, target: str, frame: bytes, paced: bool, weight: float = 1.0
    ) -> tuple[int, dict, bytearray, tuple[float, float | None, float | None]]:
        """Send one frame and read the answer on a connection of its own, reconnecting once
        if the connection dropped (``weight``: the transfer's share of a shared access
        point); the last item is the paced send's seconds, the link's own seconds
        (:attr:`EmulatedLink.last_link_s`) and the battery clock's reading when it ended."""
        ep = self.servers[target]
        pool = self._conn[target]
        conn = pool.acquire()
        try:
            for attempt in (0, 1):
                sock = conn.get()
                try:
                    sent: tuple[float, float | None, float | None] = (0.0, None, None)
                    if paced:
                        send_s = ep.link.send(sock, frame, weight)
                        # when the radio stopped, on the battery's clock
                        end = self.battery.clock() if self.battery is not None else None
                        sent = (send_s, ep.link.last_link_s, end)
                    else:
                        sock.sendall(frame)
                    kind, header, payload = read_frame(sock)
                    if paced:
                        ep.link.after_reply()
                    if kind == ERROR and header.get("field") in ("frame", "magic"):
                        conn.drop()
                    return kind, header, payload, sent
                except (ConnectionError, OSError):
                    conn.drop()
                    if attempt:
                        raise
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            pool.release(conn)

    last_output: np.ndarray | None = None
    """The network's output for the task that finished last (float32); with overlapping
    tasks, each task's own is its :attr:`PendingTask.output`."""

    def close(self) -> None:
        """Close the connections."""
        for c in self._conn.values():
            c.close()


class FixedDecider:
    """Always the same candidate (by name) and target: for experiments and validation."""

    def __init__(self, split: str, target: str | None) -> None:
        self.split, self.target = split, target

    def __call__(self, device: Device, entry: dict[str, Any]) -> dict[str, Any]:
        """The fixed decision."""
        return {"split": self.split, "target": self.target, "source": "fixed"}


class SchedulerDecider:
    """Decisions from the edge scheduler, in process or over HTTP.

    Parameters
    ----------
    scheduler
        An :class:`edgesplit.scheduler.Scheduler`, or the base URL of its HTTP service
        (``http://127.0.0.1:8080``).
    board
        Shared, thread-safe latest entries of every device (name -> entry), so that devices
        of one process see each other; devices with no entry are sent as idle, with this
        device's link rates (their mean where this device has no link to an access point)
        for the access points they reach (the policy description's ``device_links``, in
        process and over HTTP alike). The scheduler needs every device of its policy in
        each request. A device's entry carries its battery's ``charge_j`` and
        ``energy_debt_j`` as it last reported them; one not heard of that has a battery in
        the policy (``device_batteries_j``) is sent empty (``charge_j`` 0: nothing is known
        of its charge, and 0 claims none).
    """

    def __init__(self, scheduler: Any, board: dict[str, dict[str, Any]] | None = None) -> None:
        self.scheduler = scheduler
        self.board = board if board is not None else {}
        self._lock = threading.Lock()
        if isinstance(scheduler, str):
            with urllib.request.urlopen(scheduler.rstrip("/") + "/v1/policy", timeout=10) as r:
                self.policy = json.load(r)
        else:
            self.policy = scheduler.policy.describe()

    def request(self, device: Device, entry: dict[str, Any]) -> dict[str, Any]:
        """The snapshot sent to the scheduler for ``device``'s pending task."""
        return self.joint_request({device.name: entry}, device.server_backlog_s)

    def joint_request(
        self,
        entries: Mapping[str, dict[str, Any]],
        server_backlog_s: Mapping[str, float],
        slot: int | None = None,
        idle: Mapping[str, dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """One snapshot for several devices' pending tasks (device name -> entry), the
        others from the board: what a slotted deployment sends once per slot, as the
        policy was trained (one joint decision for the slot's tasks; ``slot``, the slot's
        index in the policy's episode, is its time feature). ``idle``: entries of devices
        with nothing pending, as they are now (backlog, link rates, charge: a joint
        policy reads them, as it read the environment's idle devices), for the board;
        their ``task`` and ``queue_length`` are sent as None and 0.

        Raises ``ValueError`` naming ``slot`` and its value if it is not an integer >= 0."""
        if slot is not None and not (
            isinstance(slot, (int, np.integer)) and not isinstance(slot, bool) and slot >= 0
        ):
            raise ValueError(f"slot = {slot!r}: expected an integer >= 0 (or None)")
        with self._lock:
            self.board.update(entries)
            for name, e in (idle or {}).items():
                self.board[name] = {**e, "task": None, "queue_length": 0}
            devices = {}
            mine = next(iter(entries.values()))["link_mbps"] if entries else {}
            for name in self.policy["devices"]:
                e = self.board.get(name)
                if e is None:  # a device not heard of: idle
                    e = {"task": None, "queue_length": 0, "backlog_s": 0.0,
                         "link_mbps": self._idle_links(name, mine)}  # fmt: skip
                    if name in self.policy.get("device_batteries_j", {}):
                        e["charge_j"] = 0.0
                devices[name] = e
            for name, entry in entries.items():
                self.board[name] = {**entry, "task": None, "queue_length": 0}
        req = {"devices": devices, "server_backlog_s": dict(server_backlog_s)}
        if slot is not None:
            req["slot"] = int(slot)
        return req

    def _idle_links(self, name: str, mine: Mapping[str, float]) -> dict[str, float]:
        aps = self.policy["device_links"][name]
        default = float(np.mean(list(mine.values()))) if mine else 10.0
        return {ap: float(mine.get(ap, default)) for ap in aps}

    def __call__(self, device: Device, entry: dict[str, Any]) -> dict[str, Any]:
        """Ask the scheduler; returns this device's decision."""
        decisions = self._ask(self.request(device, entry))
        if device.name not in decisions:
            raise RuntimeError(f"the scheduler's answer has no decision for {device.name!r}")
        return decisions[device.name]

    def decide_joint(
        self,
        entries: Mapping[str, dict[str, Any]],
        server_backlog_s: Mapping[str, float],
        slot: int | None = None,
        idle: Mapping[str, dict[str, Any]] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """One request for several devices' pending tasks (:meth:`joint_request`, with the
        ``idle`` devices' entries); returns each of those devices' decisions, with the
        scheduler's ``bandwidth_weight`` and ``compute_weight``."""
        decisions = self._ask(self.joint_request(entries, server_backlog_s, slot, idle))
        missing = sorted(set(entries) - set(decisions))
        if missing:
            raise RuntimeError(f"the scheduler's answer has no decision for {missing}")
        return {name: decisions[name] for name in entries}

    def _ask(self, req: dict[str, Any]) -> dict[str, dict[str, Any]]:
        if isinstance(self.scheduler, str):
            body = json.dumps(req).encode()
            http = urllib.request.Request(
                self.scheduler.rstrip("/") + "/v1/decide", data=body,
                headers={"Content-Type": "application/json"}, method="POST",
            )  # fmt: skip
            with urllib.request.urlopen(http, timeout=10) as r:
                answer = json.load(r)
        else:
            answer = self.scheduler.decide(req)
        return {
            d["device"]: {"split": d["split"], "target": d["target"], "source": d["source"],
                          "bandwidth_weight": d.get("bandwidth_weight", 1.0),
                          "compute_weight": d.get("compute_weight", 1.0),
                          "offload_target": d.get("offload_target")}
            for d in answer["decisions"] if d.get("split") is not None
        }  # fmt: skip
