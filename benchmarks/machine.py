"""What machine a benchmark ran on, and the page its results go to (BENCHMARKS.md).

>>> isinstance(cpu_name(), str) and "cores" in machine()
True
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["PAGE", "cpu_name", "machine", "publish"]

#: where the benchmarks record their dated sections
PAGE = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def cpu_name() -> str:
    """The CPU's model name (from ``/proc/cpuinfo``), or what :mod:`platform` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """The CPU's name and how many cores this process sees."""
    return f"{cpu_name()}, {os.cpu_count()} cores"


def publish(section: str, write: bool) -> None:
    """Print a benchmark's dated ``section``; with ``write`` (``--write``) also append it
    to :data:`PAGE`."""
    print(section)
    if write:
        with PAGE.open("a") as f:
            f.write("\n" + section.strip("\n") + "\n")
