"""Range and type checks for numeric and boolean options, one message shape for all.

A value from the command line arrives as whatever YAML made of it (`1.5`, `abc`, `maybe`,
`2`); each component checks its own options with these helpers in its constructor (or its
`check_options`), so that an absurd value fails before any model loads, naming the range,
instead of hanging (a quadratic search over 100000 tiles) or allocating (100000 crops).
"""

from __future__ import annotations

from typing import Any


def bounded_int(name: str, value: Any, low: int, high: int) -> int:
    """`value` as an int in [low, high]; bools, fractions and text fail."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and float(value).is_integer()
    if not ok or not low <= int(value) <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}]; got {value!r}")
    return int(value)


def at_least(name: str, value: Any, low: int) -> int:
    """`value` as an int >= low (no upper limit: sizes like a reduction's kept tokens, which the
    encoder's grid bounds later); bools, fractions and text fail, never truncated."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and float(value).is_integer()
    if not ok or int(value) < low:
        raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
    return int(value)


def bounded_float(name: str, value: Any, low: float, high: float) -> float:
    """`value` as a finite float in [low, high]; text and bools fail."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float))
    if not ok or not low <= float(value) <= high:
        raise ValueError(f"{name} must be a number in [{low}, {high}]; got {value!r}")
    return float(value)


def boolean(name: str, value: Any) -> bool:
    """`value` as a bool: only true/false (YAML's booleans), not 0/1/'maybe'."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false; got {value!r}")
    return value


def optional_int(name: str, value: Any, low: int, high: int) -> int | None:
    """Like `bounded_int`, with null allowed (meaning: no limit / the default)."""
    return None if value is None else bounded_int(name, value, low, high)
