"""Alias of `harness.benchmarks.mme.baseline` (MME's old home; old imports and commands keep working)."""

import sys

from harness.benchmarks.mme import baseline as _module

if __name__ == "__main__":
    sys.exit(_module.main())

sys.modules[__name__] = _module
