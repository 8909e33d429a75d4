"""Where configs live and the checks that run before Hydra composes anything.

Hydra reports an unknown group choice with a long traceback and exit code 1; researchers
typing `encoder=nope` get one line naming the valid choices and exit code 2 instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# configs/hydra/launcher/{basic,joblib,submitit_local}.yaml share names with the launcher
# plugins' schemas on purpose (documented there, validated against them); Hydra warns about
# that on every composition, in every entry point that imports this module.
warnings.filterwarnings("ignore", message=r"(?s).*is validated against ConfigStore schema", category=UserWarning)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
GROUPS = ("encoder", "preprocess", "dataset", "vlm", "experiment", "hydra/launcher")


class ConfigError(ValueError):
    """A configuration that cannot run; the message says what is valid."""


def choices(group: str) -> list[str]:
    """Config names available in a group (files `configs/<group>/<name>.yaml`)."""
    folder = CONFIG_DIR / group
    return sorted(p.stem for p in folder.glob("*.yaml"))


def validate_overrides(args: Sequence[str]) -> None:
    """Check every `group=choice[,choice...]` override on the command line."""
    for arg in args:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, _, value = arg.partition("=")
        key = key.lstrip("+~")
        if key not in GROUPS or value in ("", "null"):
            continue
        if value.startswith(("choice(", "glob(", "range(")):
            continue  # Hydra sweep functions: Hydra checks them itself
        valid = choices(key)
        for choice in value.split(","):
            if choice not in valid:
                raise ConfigError(f"unknown {key} {choice!r}; valid choices: {', '.join(valid)}")


def compose(overrides: Sequence[str], defaults: dict[str, str] | None = None) -> dict[str, Any]:
    """The resolved config for command-line overrides: the one loader of every entry point but
    the Hydra command itself (which composes the same files). `defaults` are group choices or
    options a command sets unless the user does."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    overrides = list(overrides)
    validate_overrides(overrides)
    given = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    preset = [f"{k}={v}" for k, v in (defaults or {}).items() if k not in given]
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=[*preset, *overrides])
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(str(exc).splitlines()[0]) from exc
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def experiment(name: str) -> dict[str, Any]:
    """The raw content of `configs/experiment/<name>.yaml` (its `study`, sweep params, `atlas`
    block): what the sweep and atlas commands read before Hydra composes any job."""
    import yaml

    path = CONFIG_DIR / "experiment" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown experiment {name!r}; valid choices: {', '.join(choices('experiment'))}")
    return yaml.safe_load(path.read_text()) or {}
