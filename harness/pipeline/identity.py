"""Who made a row: run id, code version, package versions, and a hash of the resolved config."""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import datetime, timezone
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import harness

PACKAGES = ("torch", "transformers", "numpy", "pillow")


@cache
def git_commit() -> str:
    """The commit of the harness checkout, with `+dirty` if it has uncommitted changes."""
    root = Path(harness.__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True,
            timeout=10,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@cache
def package_versions() -> dict[str, str]:
    out = {"harness_version": harness.__version__}
    for name in PACKAGES:
        try:
            out[f"{name}_version"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[f"{name}_version"] = "absent"
    return out


def config_hash(config: dict[str, Any]) -> str:
    """Stable short hash of a resolved config plus the harness version (the resume key)."""
    blob = json.dumps({"config": config, "harness": harness.__version__}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def new_run_id(chash: str) -> str:
    """`<UTC timestamp with microseconds>-<config hash>`: sortable and unique per job."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S_%fZ") + f"-{chash}"


def component_columns(kind: str, name: str | None, params: dict[str, Any], prefix: str | None = None) -> dict[str, Any]:
    """The record columns of one component (strategy, dataset, reduction, ...): `<kind>` (its
    name), `<kind>_params` (JSON of every parameter) and, with a prefix, one `<prefix>_<key>`
    column per scalar parameter so that tables can group and plot by it. Built from what the
    running object reports, so two configs that build the same object get the same columns."""
    columns: dict[str, Any] = {kind: name, f"{kind}_params": json.dumps(params, sort_keys=True, default=str)}
    if prefix:
        for key, value in params.items():
            if not isinstance(value, (list, tuple, dict)):
                columns[f"{prefix}_{key}"] = value
    return columns
