"""Alias of `harness.benchmarks.mme.clip_similarity` (MME's old home; old imports and commands keep working)."""

import sys

from harness.benchmarks.mme import clip_similarity as _module

sys.modules[__name__] = _module
