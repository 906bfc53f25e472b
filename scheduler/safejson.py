"""JSON parsing that refuses pathological input cleanly: nesting deeper than a limit, and the
non-standard constants ``NaN`` / ``Infinity`` that Python's :mod:`json` accepts by default.

Python's parser recurses once per nesting level and raises :class:`RecursionError` about
1,000 levels down (or crashes the code that later walks the value); this module measures the
depth first, on the raw text, without recursing, and raises :class:`JSONError` (a
``ValueError``) instead.

>>> loads(b'{"a": [1, 2, {"b": null}]}', max_depth=3)
{'a': [1, 2, {'b': None}]}
>>> nesting_depth(b'{"a": "[[[[", "b": [[1]]}')  # brackets inside strings do not count
3
>>> loads(b"[" * 100_000, max_depth=64)
Traceback (most recent call last):
...
edgesplit.scheduler.safejson.JSONError: nested 100000 levels deep (the limit is 64)
>>> loads(b'{"x": NaN}', max_depth=8)
Traceback (most recent call last):
...
edgesplit.scheduler.safejson.JSONError: not valid JSON: NaN is not valid JSON
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

__all__ = ["JSONError", "loads", "nesting_depth"]

_ESCAPE = re.compile(rb"\\.", re.DOTALL)  # a backslash and the byte it escapes
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_OPEN = frozenset(b"[{")


class JSONError(ValueError):
    """The text is not JSON, or is nested deeper than allowed."""


def nesting_depth(data: bytes | str) -> int:
    """The deepest nesting of arrays and objects in the JSON text ``data`` (0 for a scalar).

    Brackets inside strings do not count. Works on any bytes, valid JSON or not, in time
    linear in their length and without recursion.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    # without escapes, every quote left opens or closes a string: the even pieces between
    # quotes are outside strings, and hold the brackets that count
    pieces = _ESCAPE.sub(b"", raw).translate(None, _NOT_STRUCTURE).split(b'"')
    brackets = b"".join(pieces[::2])
    if len(brackets) > 4096:  # long: vectorised
        b = np.frombuffer(brackets, dtype=np.uint8)
        steps = np.where((b == ord("[")) | (b == ord("{")), 1, -1).astype(np.int64)
        return max(int(np.cumsum(steps).max()), 0)
    depth = deepest = 0
    for c in brackets:
        if c in _OPEN:
            depth += 1
            if depth > deepest:
                deepest = depth
        else:
            depth -= 1
    return deepest


def _no_constants(token: str) -> float:
    raise ValueError(f"{token} is not valid JSON")


def loads(data: bytes | str, *, max_depth: int) -> Any:
    """Parse the JSON text ``data``; :class:`JSONError` if it is nested deeper than
    ``max_depth`` levels, holds ``NaN``/``Infinity``, or is not JSON (UTF-8) at all."""
    depth = nesting_depth(data)
    if depth > max_depth:
        raise JSONError(f"nested {depth} levels deep (the limit is {max_depth})")
    try:
        return json.loads(data, parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise JSONError(f"not valid JSON: {e}") from e
