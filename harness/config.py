"""Where configs live and the checks that run before Hydra composes anything.

Hydra reports an unknown group choice or key with a long traceback ("use +key") and exit code
1, and would create its output folder from an unchecked `study`; researchers typing
`encoder=nope`, `preprocess.max_tile=3` or `study=../x` get one line naming the valid choices,
keys or rule and exit code 2 instead, before anything is written. A parameter that the chosen
class takes but its YAML does not list (`preprocess=native preprocess.max_tiles=6`) is passed
on as Hydra's `++key` form, so the plain spelling works.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import yaml

# configs/hydra/launcher/{basic,joblib,submitit_local}.yaml share names with the launcher
# plugins' schemas on purpose (documented there, validated against them); Hydra warns about
# that on every composition, in every entry point that imports this module.
warnings.filterwarnings("ignore", message=r"(?s).*is validated against ConfigStore schema", category=UserWarning)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
GROUPS = ("encoder", "preprocess", "dataset", "reduce", "vlm", "experiment", "hydra/launcher")


class ConfigError(ValueError):
    """A configuration that cannot run; the message says what is valid."""


def choices(group: str) -> list[str]:
    """Config names available in a group: files `configs/<group>/<name>.yaml`, and in subfolders
    `<folder>/<name>` (experiments are grouped per study: `experiment=<study>/<variant>`);
    `_<name>.yaml` are bases the others start from, not choices."""
    folder = CONFIG_DIR / group
    return sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml")
                  if not p.stem.startswith("_"))


SWEEP_FUNCTIONS = ("choice(", "glob(", "range(", "interval(", "tag(", "sort(", "shuffle(")
# Options whose value becomes a folder name (checked by `harness.folders.check_name`).
NAME_OPTIONS = ("study",)
# Encoder constructor arguments that are set at the top level (`seed=`, not `encoder.seed=`),
# and those that, with the ones the harness sets itself, are no `encoder.<key>`.
ENCODER_RUN_OPTIONS = ("batch_views", "seed", "attn")
ENCODER_NOT_KEYS = ("runtime", "connector_params", *ENCODER_RUN_OPTIONS)


@cache
def _yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def _option_yaml(group: str, choice: str) -> dict[str, Any]:
    """A group option's keys with those of the `_<base>` files its defaults list starts from."""
    data = _yaml(CONFIG_DIR / group / f"{choice}.yaml")
    out: dict[str, Any] = {}
    for entry in data.get("defaults", []):
        if isinstance(entry, str) and entry.startswith("_") and entry != "_self_":
            out.update(_option_yaml(group, entry))
    return {**out, **{k: v for k, v in data.items() if k != "defaults"}}


def top_level_keys() -> list[str]:
    """Options a command line may set at the top level: those of config.yaml and of any experiment."""
    keys = {k for k in _yaml(CONFIG_DIR / "config.yaml") if k != "defaults"}
    for name in choices("experiment"):
        keys |= {k for k in experiment(name) if k not in ("defaults", "hydra")}
    return sorted(keys | {g for g in GROUPS if "/" not in g} | {"hydra"})


def _chosen(group: str, given: dict[str, str]) -> list[str]:
    """The options of `group` this command line can compose: those it names, else the default
    of config.yaml and those the named experiments select or sweep."""
    if group in given and not given[group].startswith(SWEEP_FUNCTIONS):
        return given[group].split(",")
    found = [d[group] for d in _yaml(CONFIG_DIR / "config.yaml").get("defaults", []) if isinstance(d, dict)
             and group in d]
    for name in given.get("experiment", "").split(","):
        if not name or name == "null":
            continue
        data = experiment(name)
        found += [v for d in data.get("defaults", []) if isinstance(d, dict) for k, v in d.items()
                  if k == f"override /{group}"]
        swept = ((data.get("hydra") or {}).get("sweeper") or {}).get("params") or {}
        if group in swept:
            found += str(swept[group]).split(",")
    return [c.strip() for c in found if c]


def group_keys(group: str, choice: str, given: dict[str, str]) -> set[str]:
    """Keys a `group.<key>=` override may set under this choice: its YAML's keys plus the
    keyword parameters of the class it builds (for `preprocess=native`: of the chosen
    encoders' native strategies)."""
    from harness.data import DATASETS
    from harness.encoders import ENCODERS
    from harness.preprocess import STRATEGIES
    from harness.reduce import REDUCERS
    from harness.registry import UnknownChoiceError, keyword_params

    keys = set(_option_yaml(group, choice))
    name = _option_yaml(group, choice).get("name", choice)
    try:
        if group == "encoder":
            keys |= keyword_params(ENCODERS.get(name)) - set(ENCODER_NOT_KEYS)
        elif group == "dataset":
            keys |= keyword_params(DATASETS.get(name))
        elif group == "preprocess" and name == "native":
            for encoder in _chosen("encoder", given):
                keys |= keyword_params(STRATEGIES.get(ENCODERS.get(_yaml(
                    CONFIG_DIR / "encoder" / f"{encoder}.yaml").get("name", encoder)).native_strategy))
        elif group == "preprocess":
            keys |= keyword_params(STRATEGIES.get(name))
        elif group == "reduce":
            keys |= keyword_params(REDUCERS.get(name))
    except UnknownChoiceError:
        pass  # a config file without a class: its YAML keys only
    return keys


def validate_overrides(args: Sequence[str]) -> list[str]:
    """Check every override on the command line (group choices, keys, names that become
    folders) and return them with valid keys that a group's YAML lacks in Hydra's `++` form."""
    from harness.folders import check_name

    parsed = []
    for arg in args:
        if arg.startswith("-") or "=" not in arg:
            parsed.append((arg, None, None, None))
            continue
        key, _, value = arg.partition("=")
        parsed.append((arg, key[: len(key) - len(key.lstrip("+~"))], key.lstrip("+~"), value))
    given = {key: value for _, _, key, value in parsed if key is not None}
    out = []
    for arg, prefix, key, value in parsed:
        if key is None:
            out.append(arg)
            continue
        head, _, rest = key.partition(".")
        if key in GROUPS and value not in ("", "null") and not value.startswith(SWEEP_FUNCTIONS):
            valid = choices(key)
            for choice in value.split(","):
                if choice not in valid:
                    raise ConfigError(f"unknown {key} {choice!r}; valid choices: {', '.join(valid)}")
        elif key in NAME_OPTIONS and not value.startswith(SWEEP_FUNCTIONS):
            for name in value.split(","):
                try:
                    check_name(name, key)
                except ValueError as exc:
                    raise ConfigError(str(exc)) from exc
        elif head in GROUPS and rest and head != "experiment":
            field = rest.split(".", 1)[0]
            options = {c: group_keys(head, c, given) for c in _chosen(head, given) if c in choices(head)}
            valid = set().union(*options.values()) if options else set()
            if options and field not in valid:
                raise ConfigError(
                    f"unknown key {head}.{field} for {head}={','.join(options)}; valid keys: {', '.join(sorted(valid))}"
                )
            listed = all(field in _option_yaml(head, c) for c in options)
            if options and not prefix and not listed:
                arg = f"++{arg}"
        elif (head != "hydra" and not rest and head not in top_level_keys() and prefix != "~"
              and not (CONFIG_DIR / head).is_dir()):  # a config group added with +group=choice
            raise ConfigError(f"unknown option {key!r}; valid options: {', '.join(top_level_keys())}")
        out.append(arg)
    return out


def results_dir_of(args: Sequence[str]) -> Path:
    """The results folder a command line writes to (its `results_dir=`, else config.yaml's)."""
    given = [a.split("=", 1)[1] for a in args if a.lstrip("+").startswith("results_dir=")]
    return Path(given[-1] if given else _yaml(CONFIG_DIR / "config.yaml")["results_dir"]).expanduser()


def compose(overrides: Sequence[str], defaults: dict[str, str] | None = None) -> dict[str, Any]:
    """The resolved config for command-line overrides: the one loader of every entry point but
    the Hydra command itself (which composes the same files). `defaults` are group choices or
    options a command sets unless the user does."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    given = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    preset = [f"{k}={v}" for k, v in (defaults or {}).items() if k not in given]
    checked = validate_overrides([*preset, *overrides])  # keys are checked against the command's choices too
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=checked)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(str(exc).splitlines()[0]) from exc
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def experiment(name: str) -> dict[str, Any]:
    """The raw content of `configs/experiment/<study>/<variant>.yaml` (`name` = `<study>/<variant>`;
    its `study`, sweep params, `atlas` block): what the sweep and atlas commands read before Hydra
    composes any job."""
    import yaml

    path = CONFIG_DIR / "experiment" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown experiment {name!r}; valid choices: {', '.join(choices('experiment'))}")
    return yaml.safe_load(path.read_text()) or {}


# --- studies: the experiment configs that declare `study: <name>` ------------------------------


def study_experiments(study: str) -> list[str]:
    """The experiment configs (names) that declare `study: <study>`."""
    return [name for name in choices("experiment") if experiment(name).get("study") == study]


def known_studies() -> list[str]:
    return sorted({str(s) for name in choices("experiment") if (s := experiment(name).get("study"))})
