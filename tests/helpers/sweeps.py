"""The jobs of a study as its Hydra sweep would launch them, for tests that check every job."""

from __future__ import annotations


def sweep_jobs(experiment: str) -> list[list[str]]:
    """The override lists of an experiment's Hydra sweep (product of its sweeper params)."""
    import itertools

    import yaml
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from harness.config import CONFIG_DIR

    data = yaml.safe_load((CONFIG_DIR / "experiment" / f"{experiment}.yaml").read_text()) or {}
    params = ((data.get("hydra") or {}).get("sweeper") or {}).get("params") or {}
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    axes = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] for o in parsed]
    return [list(combo) for combo in itertools.product(*axes)] if axes else [[]]
