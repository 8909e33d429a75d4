"""Rows of a benchmark in the hub's format, from the hub (`datasets`) or a local copy of its
parquet files: the small text columns read once, image bytes read lazily (one parquet row group
at a time per process), so that memory does not grow with the dataset."""

from __future__ import annotations

import bisect
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Row = tuple[int, int, dict[str, Any]]  # (file index, row index, text columns)


def bytes_or_path(value: Any) -> bytes | str:
    """`datasets`' Image struct {bytes, path}: the bytes when embedded, else the path."""
    if isinstance(value, dict):
        return value["bytes"] if value.get("bytes") is not None else value.get("path") or b""
    return value if value is not None else b""


def _digest(data: bytes | str) -> str:
    return hashlib.sha1(data if isinstance(data, bytes) else data.encode()).hexdigest()[:16]


def raise_error(error: Exception) -> Any:
    """A picklable loader that fails with `error` (a damaged row becomes its image's error row)."""
    raise error


def _check_columns(names: Sequence[str], required: Sequence[str], where: str) -> None:
    missing = [c for c in (*required, "image") if c not in names]
    if missing:
        raise ValueError(f"{where}: no column(s) {', '.join(missing)}; has {', '.join(names)}")


class ParquetRows:
    """A set of parquet files in the hub's schema (`required` text columns, `optional` ones read
    when present, and an `image` column)."""

    def __init__(self, files: list[Path], required: Sequence[str], optional: Sequence[str] = (),
                 what: str = "parquet") -> None:
        import pyarrow.parquet as pq

        self.files, self.required, self.optional, self.what = files, tuple(required), tuple(optional), what
        self.row_group_starts: list[list[int]] = []
        for f in files:
            meta = pq.ParquetFile(f).metadata
            starts, total = [], 0
            for g in range(meta.num_row_groups):
                starts.append(total)
                total += meta.row_group(g).num_rows
            self.row_group_starts.append([*starts, total])
        self._cache_key: tuple[int, int] | None = None
        self._cache: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_cache_key": None, "_cache": None}

    def text_columns(self) -> list[Row]:
        import pyarrow.parquet as pq

        out = []
        for fi, f in enumerate(self.files):
            names = pq.ParquetFile(f).schema_arrow.names
            _check_columns(names, self.required, f"{self.what} {f}")
            columns = [*self.required, *(c for c in self.optional if c in names)]
            for ri, row in enumerate(pq.read_table(f, columns=columns).to_pylist()):
                out.append((fi, ri, row))
        return out

    def image_bytes(self, file_index: int, row: int) -> bytes | str:
        """The encoded image (or, for a parquet that stores only paths, its path)."""
        import pyarrow.parquet as pq

        starts = self.row_group_starts[file_index]
        group = bisect.bisect_right(starts, row) - 1
        if self._cache_key != (file_index, group):
            self._cache = None  # drop the old row group before reading the next
            table = pq.ParquetFile(self.files[file_index]).read_row_group(group, columns=["image"])
            self._cache = table.column("image").combine_chunks()
            self._cache_key = (file_index, group)
        return bytes_or_path(self._cache[row - starts[group]].as_py())

    def source(self, file_index: int) -> str:
        return str(self.files[file_index])

    def image_digests(self) -> list[str]:
        """A hash of every row's image bytes, in row order (which rows show the same image, for
        a dataset without image ids), read one row group at a time."""
        import pyarrow.parquet as pq

        out = []
        for f in self.files:
            pf = pq.ParquetFile(f)
            for g in range(pf.metadata.num_row_groups):
                column = pf.read_row_group(g, columns=["image"]).column("image").combine_chunks()
                out += [_digest(bytes_or_path(v.as_py())) for v in column]
        return out

    def fingerprint(self) -> Any:
        return [(f.name, f.stat().st_size, starts[-1]) for f, starts in zip(self.files, self.row_group_starts,
                                                                          strict=True)]


class HubRows:
    """A `datasets.Dataset` (memory-mapped Arrow), images not decoded to PIL."""

    def __init__(self, ds: Any, required: Sequence[str], optional: Sequence[str] = (), what: str = "hub") -> None:
        import datasets

        _check_columns(ds.column_names, required, what)
        self.ds = ds.cast_column("image", datasets.Image(decode=False))
        self.columns = [*required, *(c for c in optional if c in ds.column_names)]
        self.what = what

    def text_columns(self) -> list[Row]:
        cols = self.ds.select_columns(self.columns).to_dict()
        return [(0, i, {k: cols[k][i] for k in self.columns}) for i in range(len(self.ds))]

    def image_bytes(self, file_index: int, row: int) -> bytes | str:
        return bytes_or_path(self.ds[row]["image"])

    def source(self, file_index: int) -> str:
        return self.what

    def image_digests(self) -> list[str]:
        return [_digest(bytes_or_path(v)) for v in self.ds["image"]]

    def fingerprint(self) -> Any:
        return [self.what, getattr(self.ds, "_fingerprint", None), len(self.ds)]


def parquet_files(path: Path, split: str, config: str | None = None) -> list[Path]:
    """The parquet files of `split` in a local copy of a hub dataset: `path` itself, or
    `<path>/data/<split>-*.parquet`, `<path>/<config>/<split>-*.parquet` (the hub's layout of a
    dataset with configs), files directly in `path` or one level down; all files when none is
    named after the split."""
    if path.is_file():
        return [path]
    if config and (path / config).is_dir():
        path = path / config
    files = (sorted(path.glob("data/*.parquet")) or sorted(path.glob("*.parquet"))
             or sorted(path.glob("*/*.parquet")))
    split_files = [f for f in files if f.name.startswith(f"{split}-") or f.name.startswith(f"{split}.")]
    return split_files or files


def is_offline() -> bool:
    keys = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    return any(os.environ.get(k, "0").lower() in ("1", "true", "yes") for k in keys)


def load_hub(hf_id: str, config: str | None, split: str, revision: str | None, cache_dir: str | None,
             what: str, local: str) -> Any:
    """`datasets.load_dataset` of one split, or a one-line error saying how to use a local copy."""
    import datasets

    try:
        return datasets.load_dataset(hf_id, config, split=split, revision=revision, cache_dir=cache_dir)
    except Exception as exc:
        why = "offline (HF_HUB_OFFLINE=1) and not in the cache" if is_offline() else f"{type(exc).__name__}: {exc}"
        name = f"{hf_id!r}" + (f" config {config!r}" if config else "") + f" split {split!r}"
        raise ValueError(f"{what}: cannot load {name} from the hub: {why}; {local}") from exc
