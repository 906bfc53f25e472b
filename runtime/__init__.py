"""EdgeSplit runtime: split inference executed for real, driven by the scheduler.

* :mod:`~edgesplit.runtime.partition` (torch, offline): heads and tails of a network's kept
  split candidates as ONNX files plus a manifest, ``python -m edgesplit.runtime partition``;
* :mod:`~edgesplit.runtime.parts`: load a partition directory and run it (onnxruntime, or
  torch eager in :mod:`~edgesplit.runtime.engines_torch`);
* :mod:`~edgesplit.runtime.wire`: the binary framing between device and server;
* :mod:`~edgesplit.runtime.link`: an emulated link (sender-side pacer plus round-trip delay);
* :mod:`~edgesplit.runtime.server`: hosts tails over TCP, ``python -m edgesplit.runtime serve``;
* :mod:`~edgesplit.runtime.device`: runs heads, asks the scheduler, sends cut tensors;
* :mod:`~edgesplit.runtime.battery`: a device's battery with the simulator's accounting;
* :mod:`~edgesplit.runtime.validate`: measured latencies against the simulator's;
* :mod:`~edgesplit.runtime.demo`: devices with Poisson arrivals against real servers.

The device and the server import neither training code (gymnasium, pettingzoo,
stable-baselines3) nor, on the onnxruntime engine, torch. See ``docs/runtime.md``.
"""
