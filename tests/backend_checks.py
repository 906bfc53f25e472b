"""Field-by-field comparison of two backends' step results or states, shared by the
backend cross-checks (``tests/test_backends.py``, ``tests/test_candidate_tables.py``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np


def assert_same_fields(
    ref: Any, got: Any, names: Iterable[str], where: str, atol: float = 1e-15
) -> None:
    """Every named field of ``got`` equals ``ref``'s: floats to ``rtol=1e-12`` and ``atol``,
    everything else exactly; a failure names ``where`` and the field."""
    for name in names:
        x, y = getattr(ref, name), getattr(got, name)
        if np.asarray(x).dtype.kind == "f":
            np.testing.assert_allclose(y, x, rtol=1e-12, atol=atol, err_msg=f"{where}: {name}")
        else:
            np.testing.assert_array_equal(y, x, err_msg=f"{where}: {name}")
