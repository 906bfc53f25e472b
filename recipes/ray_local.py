"""Start Ray for the recipes: a cluster's address when given, else a local instance that
binds and talks on the loopback only.

Left to itself, Ray on Linux advertises the machine's network address (``ray.init``
turns ``_node_ip_address="127.0.0.1"`` into it), and its usage-stats module asks the
cloud metadata service (169.254.169.254) which cloud it runs on even with usage stats off.
For a single machine this module switches both off before Ray starts, through Ray's own
settings: ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (Ray's single-machine mode: the node's
address is 127.0.0.1), ``RAY_USAGE_STATS_ENABLED=0``, and plain-HTTP requests of Ray's
helpers sent to a closed port on the loopback (``http_proxy``), so the metadata probes end
there.
"""

from __future__ import annotations

import os


def init_ray(address: str | None = None, num_cpus: int = 2) -> None:
    """``ray.init`` for a cluster (``address``, e.g. ``"auto"`` on a node that ran
    ``ray start``) or, without one, a local instance on the loopback."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address is None:
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        for key in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
            os.environ[key] = "http://127.0.0.1:9"
        os.environ["no_proxy"] = os.environ["NO_PROXY"] = ""
    import ray

    if address is None:
        ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", num_cpus=num_cpus)
    else:
        ray.init(address=address)
