"""Link classes: how fast a wireless or wired link is, slot by slot.

A *link class* (:class:`LinkClass`) is one kind of link with the published figures it
matches (mean and standard deviation of the rate in Mbps, a round-trip time) and the
parameters of its generator. The catalogue (:func:`load_links`, by default the shipped
``cost_models/data/links.json``) names them; every number there carries its source. The
figures, their sources and the generator model are written up in ``docs/links.md``.

A :class:`LinkProcess` steps a batch of independent links of one class, slot by slot.
It owns no random generator: every random choice is made from arrays of uniforms in
``[0, 1)`` that the caller supplies (the simulator derives them from a counter-based
generator keyed by each environment's seed), so a batch of links equals the same links
stepped one by one, and the same uniforms always give the same rates.

Three kinds of class:

``"markov"``
    Markov-modulated rate. A hidden state ``k`` (one of ``n_states``) sets a level
    ``m_k``; on top of it a log-normal factor ``exp(x - s^2/2)`` whose log ``x`` is an
    Ornstein-Uhlenbeck process (stationary ``N(0, s^2)``, correlation time
    ``noise_tau_s``). The state is redrawn from its stationary law (uniform over states)
    at rate ``K / ((K - 1) * dwell_s)``, so that the mean time spent in a state is
    ``dwell_s``; the per-slot transition matrix is the exact ``expm(Q * slot_s)``
    of that generator, hence right for any slot length. The levels and ``s`` are solved
    from the class's mean, SD and ``state_share`` (the share of the log-variance carried
    by the slow state) so that the long-run mean and SD equal the class's figures
    (:func:`markov_calibration`, :func:`stationary_stats`).
``"trace"``
    Replays measured or synthetic throughput traces (``time_s<TAB>Mbps`` files, the
    Pensieve format; :func:`load_trace`) multiplied by a ``scale`` factor. At reset each
    link picks a trace and a start offset; each step advances ``slot_s`` seconds,
    wrapping at the end; the rate is the trace's value at that time (a step function).
``"wired"``
    A constant rate (a wired backhaul), with its round-trip time.

Rates are float64 Mbps (10^6 bit/s) and never below :data:`FLOOR_MBPS` (0.01 Mbps): a
trace sample of 0 (an outage) becomes 0.01 Mbps, so that transfer times stay finite.

The package holds one module per job; every name below is importable from
``edgesplit.cost_models.links`` itself:

=================  ==========================================================================
``traces``         :class:`Trace`, :func:`load_trace`, :class:`TraceError`; a directory of
                   traces: :func:`trace_files`, :func:`default_trace_dir`,
                   :class:`TraceDirError`, :func:`set_stats`
``catalogue``      :class:`LinkClass` and its parameters, :class:`LinkCatalogue`,
                   :func:`load_links`, :class:`LinkError`, :data:`FLOOR_MBPS`,
                   :func:`trace_link_class` (a ``"trace"`` class from files)
``calibration``    :func:`markov_calibration`, :func:`transition_matrix`,
                   :func:`stationary_stats`
``markov``         the Markov step, written once for both processes:
                   ``MarkovStatics``, ``markov_reset``, ``markov_step``
``process``        :class:`LinkProcess`, :class:`LinkBank`
=================  ==========================================================================

Examples
--------
>>> import numpy as np
>>> from edgesplit.cost_models.links import LinkProcess, load_links
>>> links = load_links()
>>> lte = links["lte"]
>>> proc = LinkProcess(lte, slot_s=0.1, shape=(4, 3))   # 4 environments x 3 links
>>> rng = np.random.default_rng(0)
>>> r0 = proc.reset(rng.random((4, 3, proc.n_reset_uniforms)))
>>> r1 = proc.step(rng.random((4, 3, proc.n_step_uniforms)))
>>> r1.shape, r1.dtype.name, bool((r1 > 0).all())
((4, 3), 'float64', True)
"""

from __future__ import annotations

from edgesplit.cost_models.links.calibration import (
    MarkovCalibration,
    StationaryStats,
    markov_calibration,
    stationary_stats,
    transition_matrix,
)
from edgesplit.cost_models.links.catalogue import (
    FLOOR_MBPS,
    KINDS,
    SCHEMA,
    SCHEMA_VERSION,
    LinkCatalogue,
    LinkClass,
    LinkError,
    MarkovParams,
    TraceParams,
    WiredParams,
    load_links,
    trace_link_class,
)
from edgesplit.cost_models.links.process import LinkBank, LinkProcess
from edgesplit.cost_models.links.traces import (
    Trace,
    TraceDirError,
    TraceError,
    default_trace_dir,
    load_trace,
    set_stats,
    trace_files,
)

__all__ = [
    "FLOOR_MBPS",
    "KINDS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "LinkBank",
    "LinkCatalogue",
    "LinkClass",
    "LinkError",
    "LinkProcess",
    "MarkovCalibration",
    "MarkovParams",
    "StationaryStats",
    "Trace",
    "TraceDirError",
    "TraceError",
    "TraceParams",
    "WiredParams",
    "default_trace_dir",
    "load_links",
    "load_trace",
    "markov_calibration",
    "set_stats",
    "stationary_stats",
    "trace_files",
    "trace_link_class",
    "transition_matrix",
]
