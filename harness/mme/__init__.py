"""MME's old home: each module here is an alias of `harness.benchmarks.mme.<module>` (the
benchmark box, docs/benchmarks.md), so that `harness.mme.scoring` and
`python -m harness.mme.baseline` keep working."""
