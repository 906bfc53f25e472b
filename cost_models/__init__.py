"""Profiled cost models of DNN inference: network profiles, device and link catalogues.

This package knows nothing of reinforcement learning. It answers three questions for the
simulator in :mod:`edgesplit.envs`:

* how long each node of a network takes on a device class, and how many bytes cross each
  candidate split (:mod:`edgesplit.cost_models.network`);
* what a device class can do and what it draws (:mod:`edgesplit.cost_models.devices`);
* how fast a wireless or wired link is, slot by slot (:mod:`edgesplit.cost_models.links`).
"""
