"""Alias of `harness.benchmarks.mme.data` (MME's old home; old imports and commands keep working)."""

import sys

from harness.benchmarks.mme import data as _module

sys.modules[__name__] = _module
