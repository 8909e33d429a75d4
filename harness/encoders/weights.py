"""Pretrained weights: only the vision tensors of a safetensors checkpoint, through an
explicit, strict key map.

A checkpoint is a folder (or a hub id resolved to the local Hugging Face cache) holding
`model.safetensors.index.json` + shards, or plain `*.safetensors` files. The key map says
which checkpoint keys are ours and what they are called here (`backbone.*`, `connector.*`);
every other tensor (the language model, text tower, ...) is never read. A model key that the
checkpoint lacks, or a selected checkpoint key that maps to nothing here, is an error naming
it. Tensors are read one at a time (safetensors, memory-mapped) and copied into the model, so
peak extra memory is about one tensor. No pickle, no `trust_remote_code`.
"""

from __future__ import annotations

import re
import threading
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from harness.files import BadFile, name_inside, read_json_object, safetensors_keys

INDEX = "model.safetensors.index.json"
HUB_PROBE_TIMEOUT_S = 3.0  # how long a hub id without a cached copy waits for the hub to answer
SINGLE = "model.safetensors"


class WeightsError(ValueError):
    """Weights that cannot be found or do not fit the model; the message says what to do."""


@dataclass(frozen=True)
class KeyMap:
    """Checkpoint key -> our key(s).

    `prefixes`: (checkpoint prefix, our prefix), first match wins; keys under no prefix are
    not vision tensors and are never read. `ignore`: regexes of keys under a prefix that are
    not ours either (tied LM embeddings, old non-persistent buffers). `renames`: regex
    substitutions on the remainder. `qkv`: split fused `attn.qkv` into q/k/v projections.
    """

    name: str
    prefixes: tuple[tuple[str, str], ...]
    renames: tuple[tuple[str, str], ...] = ()
    ignore: tuple[str, ...] = ()
    qkv: bool = False
    # Regexes of OUR keys this format may lack (they keep their initial values and the encoder's
    # `after_load` is told), e.g. the head and last block SigLIP towers of LLaVA-OneVision drop.
    absent_ok: tuple[str, ...] = ()

    def selects(self, key: str) -> bool:
        return any(key.startswith(p) for p, _ in self.prefixes) and not any(re.search(i, key) for i in self.ignore)

    def targets(self, key: str) -> list[tuple[str, int | None]]:
        """Our key(s) for a selected checkpoint key, with the chunk index for split tensors."""
        prefix, ours = next((p, o) for p, o in self.prefixes if key.startswith(p))
        rest = key[len(prefix) :]
        if self.qkv:
            m = re.search(r"\.attn\.qkv\.(weight|bias)$", rest)
            if m:
                head = rest[: m.start()]
                for pattern, repl in self.renames:
                    head = re.sub(pattern, repl, head)
                return [(f"{ours}{head}.attention.{n}_proj.{m.group(1)}", i) for i, n in enumerate("qkv")]
        for pattern, repl in self.renames:
            rest = re.sub(pattern, repl, rest)
        return [(ours + rest, None)]


POSITION_IDS = r"embeddings\.position_ids$"  # an old non-persistent buffer some checkpoints still hold

# A checkpoint format an encoder reads, and the connector its tensors fill (None: the backbone alone).
Format = tuple[KeyMap, str | None]


class Checkpoint:
    """The tensor names of a safetensors checkpoint folder and the file holding each."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        index = folder / INDEX
        self.file_of: dict[str, str] = {}
        if index.is_file():
            self.file_of = weight_map_of(index, folder)
        else:
            files = sorted(folder.glob("*.safetensors"))
            if not files:
                raise WeightsError(f"no {INDEX} and no *.safetensors in {folder} (pickle checkpoints are not read)")
            for f in files:
                self.file_of.update(dict.fromkeys(safetensors_keys(f), f.name))  # the header only

    def check_files(self, keys: list[str]) -> None:
        """The files holding `keys` are whole safetensors files that hold them (headers only),
        so a truncated or missing shard is named before any model is built."""
        for file, wanted in self.read(keys).items():
            have = set(safetensors_keys(self.folder / file))
            lacking = [k for k in wanted if k not in have]
            if lacking:
                raise BadFile(f"{self.folder / file}: lacks {', '.join(lacking[:5])}, which {INDEX} places there")

    def read(self, keys: list[str]) -> dict[str, list[str]]:
        """Keys grouped by file, so each shard is opened once."""
        by_file: dict[str, list[str]] = defaultdict(list)
        for key in keys:
            by_file[self.file_of[key]].append(key)
        return by_file


def weight_map_of(index: Path, folder: Path) -> dict[str, str]:
    """Tensor name -> shard file of a `model.safetensors.index.json`; every shard inside `folder`."""
    weight_map = read_json_object(index, INDEX).get("weight_map")
    if not isinstance(weight_map, dict):
        raise BadFile(f"{index}: no \"weight_map\" object (tensor name -> shard file)")
    return {str(k): name_inside(folder, f, INDEX) for k, f in weight_map.items()}


def check_weights_folder(formats: tuple[Format, ...], weights: str) -> None:
    """A local checkpoint folder's vision files (for an encoder whose checkpoint formats are
    `formats`), checked before the model is built (index, shard headers, the tensors each shard
    should hold); hub ids are checked when fetched."""
    path = Path(weights).expanduser()
    if weights in ("random", "pretrained") or not path.is_dir():
        return
    ckpt = Checkpoint(path)
    maps = [m for m, _ in formats]
    ckpt.check_files([k for k in ckpt.file_of if any(m.selects(k) for m in maps)])


def _offline_error(source: str, why: str) -> WeightsError:
    return WeightsError(
        f"weights {source!r}: not in the local Hugging Face cache and the hub cannot be reached "
        f"({why}); download it where there is network (`hf download {source}`) and pass "
        f"weights=<that folder>, or use weights=random"
    )


def hub_unreachable(timeout_s: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """Why the hub endpoint does not answer within `timeout_s` (name lookup included), or None
    when it answers at all (any HTTP status). One probe instead of huggingface_hub's own
    retries, which take about 50 s per job without network."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(constants.ENDPOINT, method="HEAD"), timeout=timeout_s)
            outcome.append(None)
        except urllib.error.HTTPError:
            outcome.append(None)  # it answered
        except (OSError, ValueError) as exc:
            outcome.append(f"{constants.ENDPOINT}: {type(exc).__name__}: {getattr(exc, 'reason', exc)}")

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return outcome[0] if outcome else f"{constants.ENDPOINT}: no answer within {timeout_s:g} s"


def _fetch(source: str, maps: list[KeyMap], local_only: bool) -> Path:
    """The folder of `source`'s index and the shards holding vision tensors (or its single
    file), from the cache alone when `local_only`."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    def download(filename: str) -> Path:
        return Path(hf_hub_download(repo_id=source, filename=filename, local_files_only=local_only))

    try:
        index = download(INDEX)
    except EntryNotFoundError:  # also LocalEntryNotFoundError (not cached): a cached single file may do
        try:
            return download(SINGLE).parent
        except LocalEntryNotFoundError:
            raise
        except EntryNotFoundError as exc:
            raise WeightsError(
                f"weights {source!r}: the hub repo has neither {INDEX} nor {SINGLE} (pickle checkpoints are not "
                f"read); convert it to safetensors and pass weights=<folder>"
            ) from exc
    weight_map = weight_map_of(index, index.parent)
    for shard in sorted({f for k, f in weight_map.items() if any(m.selects(k) for m in maps)}):
        download(shard)
    return index.parent


def resolve(source: str, maps: list[KeyMap]) -> Path:
    """A local folder as is; a hub id from the Hugging Face cache when everything it needs is
    there (no network), else fetched from the hub (only the index and the shards that hold
    vision tensors) after a probe of a few seconds, so that no network fails fast."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.exists() or not re.fullmatch(r"[\w.-]+/[\w.-]+", source):
        raise WeightsError(
            f"weights {source!r}: not a folder and not a hub id; use random, pretrained, a hub id or a local folder"
        )
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    try:
        return _fetch(source, maps, local_only=True)
    except LocalEntryNotFoundError as exc:
        why = hub_unreachable()
        if why is not None:
            raise _offline_error(source, why) from exc
    try:
        return _fetch(source, maps, local_only=False)
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, HfHubHTTPError, OSError) as exc:
        raise _offline_error(source, type(exc).__name__) from exc


def unreachable(source: str, maps: list[KeyMap], hub_down: Callable[[], str | None] = hub_unreachable) -> str | None:
    """Why `source` can be neither read (a folder, or a hub id whose files are all cached) nor
    fetched (`hub_down()` says why the hub does not answer), or None: the check a sweep makes
    for every job before launching any, without downloading anything."""
    from huggingface_hub.errors import LocalEntryNotFoundError

    path = Path(source).expanduser()
    if path.is_dir():
        return None
    if path.exists() or not re.fullmatch(r"[\w.-]+/[\w.-]+", source):
        return f"weights {source!r}: not a folder and not a hub id"
    try:
        _fetch(source, maps, local_only=True)
        return None
    except (LocalEntryNotFoundError, OSError):
        why = hub_down()
        return None if why is None else str(_offline_error(source, why))


def load_weights(model: torch.nn.Module, folder: Path, formats: tuple[Format, ...], connector: str) -> list[str]:
    """Load the checkpoint in `folder` into `model` (backbone + connector), strictly; returns the
    model keys the checkpoint's format may lack and did (`KeyMap.absent_ok`)."""
    absent: list[str] = []
    load_state(model, Checkpoint(folder), formats, connector, str(folder), absent)
    return absent


def load_state(
    model: torch.nn.Module, ckpt: Checkpoint, options: tuple[Format, ...], connector: str,
    where: str, absent: list[str] | None = None,
) -> KeyMap:
    """Copy the selected tensors into `model`, strictly; returns the key map used. Of the
    formats the checkpoint matches, the one that fills this connector wins, then one that
    fills the backbone alone (e.g. LLaVA-NeXT's CLIP tower under connector=flat)."""
    found = [(m, fills) for m, fills in options if any(m.selects(k) for k in ckpt.file_of)]
    if not found:
        names = ", ".join(m.name for m, _ in options)
        raise WeightsError(f"{where}: no tensor matches any known checkpoint format ({names})")
    keymap, fills = next((o for o in found if o[1] == connector), None) or next(
        (o for o in found if o[1] is None), found[0])
    selected = [k for k in ckpt.file_of if keymap.selects(k)]
    params = model.state_dict()
    expected = set(params) if fills == connector else {k for k in params if k.startswith("backbone.")}
    if fills is None and any(k.startswith("connector.") for k in params):
        raise WeightsError(
            f"{where} ({keymap.name}) holds no weights for connector {connector!r}; "
            f"use connector=flat or weights=random"
        )
    if fills is not None and fills != connector:
        raise WeightsError(
            f"{where} ({keymap.name}) holds weights for connector {fills!r}, not {connector!r}; "
            f"leave the encoder's connector or use weights=random"
        )
    plan: dict[str, list[tuple[str, int | None]]] = {k: keymap.targets(k) for k in selected}
    produced = [t for targets in plan.values() for t, _ in targets]
    unexpected = sorted(
        k for k, targets in plan.items() if any(t not in expected for t, _ in targets)
    )
    if unexpected:
        raise WeightsError(f"{where}: unexpected checkpoint key(s) for {keymap.name}: {', '.join(unexpected[:10])}")
    missing = sorted(expected - set(produced))
    allowed = [k for k in missing if any(re.search(a, k) for a in keymap.absent_ok)]
    if absent is not None:
        absent.extend(allowed)
    missing = [k for k in missing if k not in allowed]
    if missing:
        raise WeightsError(f"{where}: missing key(s) for {keymap.name}: {', '.join(missing[:10])}")
    with torch.no_grad():
        for file, keys in ckpt.read(selected).items():
            with safe_open(str(ckpt.folder / file), framework="pt") as handle:
                for key in keys:
                    tensor = handle.get_tensor(key)
                    targets = plan[key]
                    chunks = tensor.chunk(len(targets)) if len(targets) > 1 else [tensor]
                    for (target, _), chunk in zip(targets, chunks, strict=True):
                        param = params[target]
                        if param.shape != chunk.shape:
                            raise WeightsError(
                                f"{where}: {key} has shape {tuple(chunk.shape)}, {target} needs {tuple(param.shape)}"
                            )
                        param.copy_(chunk)
    return keymap
