"""Alias of `harness.benchmarks.mme.subtasks` (MME's old home; old imports and commands keep working)."""

import sys

from harness.benchmarks.mme import subtasks as _module

sys.modules[__name__] = _module
