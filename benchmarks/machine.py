"""What machine a benchmark ran on, for the pages that record results.

>>> isinstance(cpu_name(), str) and "cores" in machine()
True
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["cpu_name", "machine"]


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
