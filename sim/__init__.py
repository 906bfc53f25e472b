"""The EdgeSplit simulator: the system model, with no RL library in sight.

Everything here needs numpy (and PyYAML for scenario files); :mod:`edgesplit.sim.kernel`, the
compiled step, needs numba and is imported only when that backend is chosen. Importing this
package registers nothing and imports neither gymnasium, pettingzoo nor torch, so an edge
scheduler's host can load scenarios, build the cost tables, encode observations and run the
latency model without them. The Gymnasium and PettingZoo faces are :mod:`edgesplit.envs`.

- :mod:`~edgesplit.sim.scenario`: scenario files, validated (``load_scenario``);
- :mod:`~edgesplit.sim.tables`: the static cost tables and physics built from a scenario and
  the cost models;
- :mod:`~edgesplit.sim.encoding`: the observation encoder and action decoder;
- :mod:`~edgesplit.sim.core`: the batched simulator (numpy reference);
- :mod:`~edgesplit.sim.kernel`: the same step compiled with numba;
- :mod:`~edgesplit.sim.estimates`: each option's outcome were its device alone in the slot
  (Neurosurgeon's estimate, the shared policies' features; numpy or torch);
- :mod:`~edgesplit.sim.replay`: recorded arrivals and decisions run through the slot model
  (the runtime demo's simulator column).

>>> from edgesplit.sim.scenario import load_scenario
>>> load_scenario("single").n_devices
1
"""
