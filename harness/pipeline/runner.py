"""The runner moves data one way: dataset -> preprocess (in DataLoader workers) -> encoder
(crops of several images per backbone call) -> records.

It owns batching, timing and error rows; it knows no encoder, strategy or dataset by name.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from harness.benchmarks import Benchmark, get_benchmark
from harness.bounds import bounded_int, optional_int
from harness.data.base import Dataset
from harness.data.images import ImageLoadError
from harness.encoders.base import Encoder
from harness.metrics.latency import machine_load, summarize_ms, under_load
from harness.metrics.memory import PeakMemory, is_out_of_memory, release_cached_memory
from harness.pipeline.failures import causes, unanswered
from harness.preprocess.base import Strategy
from harness.types import EncoderOutput, Question, Record, Views
from harness.vlm.base import Answerer
from harness.vlm.records import answer_summary, question_error, question_record


@dataclass
class Prepared:
    """One image after decode and preprocess (or the error that stopped it)."""

    index: int
    sample_id: str
    label: str | None
    category: str | None
    views: Views | None
    decode_ms: float
    preprocess_ms: float
    error_kind: str | None = None
    error: str = ""
    questions: list[Question] = field(default_factory=list)
    # With views made on a GPU: the plan and the CPU pixels, until the main process makes the views.
    source: tuple[Any, Any] | None = None

    def pin_memory(self) -> Prepared:
        """Page-locked pixels, so that their upload overlaps the GPU's work (DataLoader's hook)."""
        if self.source is not None and isinstance(self.source[1], torch.Tensor):
            self.source = (self.source[0], self.source[1].pin_memory())
        return self


class _PreprocessedDataset(torch.utils.data.Dataset):
    """Decode + preprocess one image; runs inside DataLoader workers. With views made on a GPU
    (`on_device`) the worker decodes, converts and plans, and the main process makes the views."""

    def __init__(self, dataset: Dataset, strategy: Strategy, on_device: bool = False) -> None:
        self.dataset = dataset
        self.strategy = strategy
        self.on_device = on_device

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Prepared:
        sample_id, label, category, questions = f"#{index}", None, None, []
        decode_ms = preprocess_ms = float("nan")
        try:
            t0 = time.perf_counter()
            sample = self.dataset[index]
            sample_id, label, category, questions = sample.id, sample.label, sample.category, sample.questions
            image = sample.load()
            t1 = time.perf_counter()
            decode_ms = (t1 - t0) * 1e3
            if self.on_device:
                source = self.strategy.source(image)
                preprocess_ms = (time.perf_counter() - t1) * 1e3
                return Prepared(index, sample_id, label, category, None, decode_ms, preprocess_ms,
                                questions=questions, source=source)
            views = self.strategy.apply(image)
            preprocess_ms = (time.perf_counter() - t1) * 1e3
        except ImageLoadError as exc:
            return Prepared(index, sample_id, label, category, None, decode_ms, preprocess_ms, exc.kind, str(exc),
                            questions)
        except Exception as exc:  # noqa: BLE001 - one bad image must not end the run
            kind = "preprocess" if decode_ms == decode_ms else "load"
            msg = f"{sample_id}: {type(exc).__name__}: {exc}"
            return Prepared(index, sample_id, label, category, None, decode_ms, preprocess_ms, kind, msg, questions)
        return Prepared(index, sample_id, label, category, views, decode_ms, preprocess_ms, questions=questions)


def _identity_collate(items: list[Prepared]) -> list[Prepared]:
    return items


MAX_WORKERS = 256  # DataLoader worker processes
MAX_TIMING_REPEATS = 100  # encodings of each batch whose median stage times are kept
MAX_BATCH_IMAGES = 4096  # images per encoder call, as many as crops (`Encoder` MAX_BATCH_VIEWS)


def resolve_num_workers(value: int | str, cuda: bool, cores: int | None = None) -> int:
    """`num_workers`: an int >= 0, or "auto". Auto: with a GPU the CPU only decodes and
    preprocesses, so every core but one (the main process feeds the GPU), at most 8; on the
    CPU the encoder's threads want the cores, so a quarter of them (0 on this 2-core machine:
    preprocessing then runs between encoder calls, as before)."""
    if value == "auto":
        cores = cores or len(os.sched_getaffinity(0))
        return max(1, min(cores - 1, 8)) if cuda else min(cores // 4, 4)
    try:
        return bounded_int("num_workers", value, 0, MAX_WORKERS)
    except ValueError:
        raise ValueError(f"num_workers must be 'auto' or an integer in [0, {MAX_WORKERS}]; got {value!r}") from None


@dataclass
class RunResult:
    records: list[Record]
    embedding_ids: list[str] = field(default_factory=list)
    embeddings: np.ndarray | None = None
    embedding_labels: list[str | None] = field(default_factory=list)


class Runner:
    """Runs one configuration over one dataset and returns its records."""

    def __init__(
        self,
        dataset: Dataset,
        strategy: Strategy,
        encoder: Encoder,
        identity: dict[str, Any],
        *,
        num_workers: int | str = 0,
        warmup_batches: int = 1,
        progress: bool = True,
        timing_repeats: int = 1,
        answerer: Answerer | None = None,
        batch_images: int | None = None,
    ) -> None:
        self.dataset = dataset
        self.strategy = strategy
        self.encoder = encoder
        self.identity = identity
        device = getattr(getattr(encoder, "runtime", None), "device", None)
        self.num_workers = resolve_num_workers(num_workers, getattr(device, "type", "cpu") == "cuda")
        self.warmup_batches = warmup_batches
        self.progress = progress
        self.timing_repeats = bounded_int("timing_repeats", timing_repeats, 1, MAX_TIMING_REPEATS)
        self.answerer = answerer  # a VLM's language model answers each image's questions (harness.vlm)
        # ... as the dataset's benchmark prompts, parses and scores them (harness/benchmarks/)
        name = getattr(dataset, "benchmark", None)
        self.benchmark: Benchmark | None = get_benchmark(name) if answerer is not None and name else None
        self.batch_images = optional_int("batch_images", batch_images, 1, MAX_BATCH_IMAGES)
        # preprocess.device=cuda: the views are made in this process, on the GPU, in batches.
        self.views_on_device = strategy.ops.device.type != "cpu"

    def _prepared(self) -> Iterator[Prepared]:
        loader = torch.utils.data.DataLoader(
            _PreprocessedDataset(self.dataset, self.strategy, self.views_on_device),
            batch_size=1,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=_identity_collate,
            # Each worker keeps a few images ready, so decode + preprocess overlap the encoder.
            prefetch_factor=4 if self.num_workers else None,
            pin_memory=self.views_on_device and torch.cuda.is_available(),
        )
        for items in loader:
            for item in items:
                if item.source is not None:
                    self._views_here(item)
                yield item

    def _views_here(self, item: Prepared) -> None:
        """Make the views of a worker's pixels in this process (on the strategy's device); the
        time, synchronised with the device, is added to the item's preprocess time."""
        layout, pixels = item.source  # type: ignore[misc]
        item.source = None
        t0 = time.perf_counter()
        try:
            item.views = self.strategy.finish(layout, pixels)
            if item.views.pixel_values.is_cuda:
                torch.cuda.synchronize(item.views.pixel_values.device)
        except Exception as exc:  # noqa: BLE001 - one bad image must not end the run
            item.views, item.error_kind = None, "preprocess"
            item.error = f"{item.sample_id}: {type(exc).__name__}: {exc}"
        item.preprocess_ms += (time.perf_counter() - t0) * 1e3

    def _batches(self) -> Iterator[list[Prepared]]:
        """Group prepared images so that each encoder call gets about `batch_views` crops (and
        at most `batch_images` images); errors are passed through alone."""
        pending: list[Prepared] = []
        n_views = 0
        for item in self._prepared():
            if item.views is None:
                yield [item]
                continue
            pending.append(item)
            n_views += item.views.pixel_values.shape[0]
            if n_views >= self.encoder.batch_views or len(pending) == self.batch_images:
                yield pending
                pending, n_views = [], 0
        if pending:
            yield pending

    def run(self) -> RunResult:
        records: list[Record] = []
        ids: list[str] = []
        labels: list[str | None] = []
        pooled: list[np.ndarray] = []
        batch_index = 0
        self.oom_retries = 0
        load_start = machine_load("load_start")
        wall0 = time.perf_counter()
        bar = tqdm(total=len(self.dataset), unit="img", desc=self.identity.get("config_label", "run"),
                   disable=not self.progress, dynamic_ncols=True)
        with PeakMemory(self.encoder.runtime.device) as mem:
            for batch in self._batches():
                if batch[0].views is None:
                    records.append(self._error_record(batch[0]))
                    records.extend(self._question_errors(batch[0]))
                    bar.update(1)
                    continue
                warmup = batch_index < self.warmup_batches
                for part, outputs, stage_s, batch_mem, error in self._encode_fitting(batch, mem):
                    if outputs is None:  # one image that alone does not fit
                        item = part[0]
                        failed = Prepared(item.index, item.sample_id, item.label, item.category, None, item.decode_ms,
                                          item.preprocess_ms, "oom", error, item.questions)
                        records.append(self._error_record(failed))
                        records.extend(self._question_errors(failed))
                        continue
                    total_pixels = sum(p.views.layout.executed_pixels for p in part)  # type: ignore[union-attr]
                    for item, out in zip(part, outputs, strict=True):
                        record = self._image_record(item, out, stage_s, total_pixels, warmup)
                        record.values.update(batch_index=batch_index, batch_images=len(part), **batch_mem)
                        records.append(record)
                        ids.append(item.sample_id)
                        labels.append(item.label)
                        pooled.append(out.pooled.numpy())
                        records.extend(self._answers(item, out))
                batch_index += 1
                bar.update(len(batch))
        bar.close()
        wall_s = time.perf_counter() - wall0
        load = {**load_start, **machine_load("load_end")}
        load["timed_under_load"] = under_load(load_start, load, own_processes=1 + self.num_workers)
        run = self._run_record([r for r in records if r.kind == "image"], wall_s, {**mem.result, **load})
        answers, metrics = answer_summary(records, self.identity, self.benchmark)
        run.values.update(answers)
        questions = [r for r in records if r.kind == "question"]
        why = unanswered([r.status for r in questions], [r.message for r in questions])
        if why and run.status == "ok":  # images encoded, yet nothing answered: not a result
            run.status, run.message = "error:no_answer", why
        records.append(run)
        records.extend(metrics)
        matrix = np.stack(pooled).astype(np.float32) if pooled else np.zeros((0, 0), np.float32)
        return RunResult(records=records, embedding_ids=ids, embeddings=matrix, embedding_labels=labels)

    def _encode_fitting(
        self, batch: list[Prepared], mem: PeakMemory
    ) -> list[tuple[list[Prepared], list[EncoderOutput] | None, dict[str, float], dict[str, float], str]]:
        """Encode a batch; on out-of-memory, retry each half (recursively, counted in
        `self.oom_retries`). An image that alone does not fit comes back with outputs None and
        the error message, so the run goes on."""
        mem.batch_start()
        try:
            outputs, stage_s = self.encoder.encode([p.views for p in batch])  # type: ignore[misc]
            if self.timing_repeats > 1:  # the same call again; each stage's median time is kept
                times = [stage_s] + [self.encoder.encode([p.views for p in batch])[1]  # type: ignore[misc]
                                     for _ in range(self.timing_repeats - 1)]
                stage_s = {k: float(np.median([t[k] for t in times])) for k in stage_s}
            return [(batch, outputs, stage_s, mem.batch_end(), "")]
        except Exception as exc:  # only OOM is handled, the rest re-raised
            if not is_out_of_memory(exc):
                raise
            message = f"out of memory on {len(batch)} image(s): {type(exc).__name__}: {str(exc)[:300]}"
        # Outside the except block, so the exception (and the tensors its frames hold) is gone.
        release_cached_memory(self.encoder.runtime.device)
        if len(batch) == 1:
            return [(batch, None, {}, {}, f"{batch[0].sample_id}: {message}")]
        self.oom_retries += 1
        half = (len(batch) + 1) // 2
        return self._encode_fitting(batch[:half], mem) + self._encode_fitting(batch[half:], mem)

    def _answers(self, item: Prepared, out: EncoderOutput) -> list[Record]:
        """Each question of the image answered from its one encoding; a question that fails
        (out of memory, ...) becomes an error row and the run goes on."""
        if self.answerer is None or self.benchmark is None:
            return []
        bench, protocol = self.benchmark, self.answerer.protocol
        style = self.answerer.prompt_style(protocol)  # the family's own prompt under its toolkit
        texts: list[str | Exception] = []
        for question in item.questions:  # a question whose prompt cannot be built fails alone
            try:
                texts.append(bench.prompt(question, protocol, style))
            except Exception as exc:  # noqa: BLE001 - its error row is written below
                texts.append(exc)
        ready = [t for t in texts if isinstance(t, str)]
        try:  # together: the shared prefix prefilled once, questions batched (harness.vlm.batched)
            answered = self.answerer.answer_many(out.tokens, ready, layout=item.views.layout) if ready else []
        except Exception as exc:  # noqa: BLE001 - one bad image must not end the run
            answered = [exc] * len(ready)
        results = iter(answered)
        rows = []
        for k, (question, text) in enumerate(zip(item.questions, texts, strict=True)):
            answer = text if isinstance(text, Exception) else next(results)
            prediction = ""
            if not isinstance(answer, Exception):
                try:
                    prediction = bench.parse(answer.response, question, protocol)
                except Exception as exc:  # noqa: BLE001 - a parser failure costs this question only
                    answer = exc
            if isinstance(answer, Exception):
                kind = "oom" if is_out_of_memory(answer) else "answer"
                message = f"{item.sample_id}: {type(answer).__name__}: {str(answer)[:300]}"
                rows.append(question_error(self.identity, item.sample_id, item.category, k, question, bench,
                                           f"error:{kind}", message))
                if kind == "oom":
                    release_cached_memory(self.encoder.runtime.device)
                continue
            rows.append(question_record(self.identity, item.sample_id, item.category, k, question, bench, answer,
                                        prediction))
        return rows

    def _question_errors(self, item: Prepared) -> list[Record]:
        """The questions of an image that could not be encoded: error rows, never answers."""
        if self.answerer is None or self.benchmark is None:
            return []
        return [question_error(self.identity, item.sample_id, item.category, k, q, self.benchmark,
                               f"error:{item.error_kind}", item.error) for k, q in enumerate(item.questions)]

    def _image_record(
        self, item: Prepared, out: EncoderOutput, stage_s: dict[str, float], total_pixels: int, warmup: bool
    ) -> Record:
        layout = item.views.layout  # type: ignore[union-attr]
        expected = self.encoder.num_tokens(layout)
        if expected is None:  # a data-dependent reduction: the count is recorded, checked against its bounds
            lo, hi = self.encoder.token_range(layout, self.encoder.connector_name, self.encoder.reducer)
            if not lo <= out.num_tokens <= hi:
                raise AssertionError(f"{self.encoder.name}: forward gave {out.num_tokens} tokens for "
                                     f"{item.sample_id}, outside the reduction's bounds {lo}..{hi}")
        elif out.num_tokens != expected:
            raise AssertionError(
                f"{self.encoder.name}: forward gave {out.num_tokens} tokens for {item.sample_id}, "
                f"num_tokens(layout) says {expected}"
            )
        # Batch stage times are shared among its images in proportion to their crops' pixels
        # (their crops, when every crop has the tile size).
        share = layout.executed_pixels / total_pixels
        h2d_ms, enc_ms, conn_ms = (stage_s[k] * share * 1e3 for k in ("h2d", "backbone", "connector"))
        values = {
            "label": item.label,
            "category": item.category,
            "width": layout.original_size[0],
            "height": layout.original_size[1],
            "grid_rows": layout.grid[0],
            "grid_cols": layout.grid[1],
            "n_views": layout.n_views,
            "executed_views": layout.executed_views,
            "view_width": layout.view_wh[0],
            "view_height": layout.view_wh[1],
            "visual_tokens": out.num_tokens,
            "decode_ms": item.decode_ms,
            "preprocess_ms": item.preprocess_ms,
            "h2d_ms": h2d_ms,
            "encode_ms": enc_ms,
            "connector_ms": conn_ms,
            "total_ms": item.decode_ms + item.preprocess_ms + h2d_ms + enc_ms + conn_ms,
            "warmup": warmup,
        }
        if "reduce" in stage_s:  # scores + reduction, apart from backbone and connector
            values["reduce_ms"] = stage_s["reduce"] * share * 1e3
            values["total_ms"] += values["reduce_ms"]
        return Record(kind="image", identity=self.identity, image_id=item.sample_id, values=values)

    def _error_record(self, item: Prepared) -> Record:
        return Record(
            kind="image",
            identity=self.identity,
            image_id=item.sample_id,
            status=f"error:{item.error_kind}",
            message=item.error,
            values={"label": item.label, "category": item.category, "decode_ms": item.decode_ms},
        )

    def _run_record(self, records: list[Record], wall_s: float, memory: dict[str, Any]) -> Record:
        ok = [r.values for r in records if r.status == "ok"]
        warm = [v for v in ok if v["warmup"]]
        timed = [v for v in ok if not v["warmup"]]
        includes_warmup = not timed and bool(warm)
        timed = timed or ok  # all warm-up only when the run is tiny; flagged below
        values: dict[str, Any] = {
            "n_images": len(records),
            "n_ok": len(ok),
            "n_errors": len(records) - len(ok),
            "n_warmup_images": len(warm),
            "timing_includes_warmup": includes_warmup,
            "oom_retries": getattr(self, "oom_retries", 0),
            "timing_repeats": self.timing_repeats,
            "n_oom": sum(r.status == "error:oom" for r in records),
            "visual_tokens_mean": float(np.mean([v["visual_tokens"] for v in ok])) if ok else float("nan"),
            "visual_tokens_total": int(sum(v["visual_tokens"] for v in ok)),
            "views_total": int(sum(v["executed_views"] for v in ok)),
            "wall_s": wall_s,
        }
        for stage in ("decode", "preprocess", "h2d", "encode", "reduce", "connector", "total"):
            if stage != "reduce" or (timed and all("reduce_ms" in v for v in timed)):
                values.update(summarize_ms([v[f"{stage}_ms"] for v in timed], stage))
        values.update(summarize_ms([v["encode_ms"] for v in warm], "warmup_encode"))  # recorded apart
        enc_s = sum(v["h2d_ms"] + v["encode_ms"] + v.get("reduce_ms", 0.0) + v["connector_ms"] for v in timed) / 1e3
        values["encode_images_per_s"] = len(timed) / enc_s if enc_s > 0 else float("nan")
        values["encode_views_per_s"] = sum(v["executed_views"] for v in timed) / enc_s if enc_s > 0 else float("nan")
        values["images_per_s"] = len(records) / wall_s if wall_s > 0 else float("nan")
        values["views_per_s"] = values["views_total"] / wall_s if wall_s > 0 else float("nan")
        values.update(memory)
        why = causes([r.status for r in records if r.status != "ok"], [r.message for r in records if r.status != "ok"])
        status, message = ("ok", "") if ok else ("error:no_image", f"no image could be encoded: {why}")
        return Record(kind="run", identity=self.identity, status=status, message=message, values=values)
