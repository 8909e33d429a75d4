"""The one way tests run a command of the harness in a fresh Python process (from this checkout,
offline, in a given folder)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def cli(module: str, *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 300,
        background: bool = False) -> Any:
    """`python -m <module> <args>`: a CompletedProcess (text), or with `background` a Popen whose
    output is piped, which leads its own process group and takes Ctrl-C as a user's command does
    (a shell's background job, the test runner itself maybe, ignores SIGINT, and a child inherits
    that)."""
    cmd = [sys.executable, "-m", module, *args]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                **(env or {})}
    if background:
        return subprocess.Popen(cmd, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
