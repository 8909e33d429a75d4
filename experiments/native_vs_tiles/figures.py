"""Figures of the native_vs_tiles study, from results/tables/native_vs_tiles{,_images}.parquet:
the cost curves (visual tokens, encode latency, peak device memory per image against image
size, one line per configuration) and quality against tokens."""

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from harness.reporting import style
from harness.reporting.figures import StudyTables, natural_key, quality_vs_tokens, study_main

PARAMS = ("pp_max_pixels", "pp_max_tiles", "pp_num_crops")


def label(row: pd.Series) -> str:
    """`encoder / strategy (budget)` for one configuration."""
    params = [f"{c[3:]}={int(row[c])}" for c in PARAMS if c in row and pd.notna(row[c])]
    conn = f" + {row['connector']}" if "connector" in row and row["connector"] in ("llava_onevision",) else ""
    return f"{row['encoder']}{conn} / {row['strategy']}" + (f" ({', '.join(params)})" if params else "")


def per_size(images: pd.DataFrame, column: str) -> pd.DataFrame:
    """Median of `column` per configuration and image size (warm-up images left out)."""
    ok = images[~images["warmup"].astype(bool)] if "warmup" in images else images
    ok = ok.dropna(subset=[column]).copy()
    if ok.empty:
        return ok
    ok["megapixels"] = ok["width"] * ok["height"] / 1e6
    ok["config"] = ok.apply(label, axis=1)
    return ok.groupby(["config", "megapixels"], as_index=False)[column].median()


def cost_vs_size(images: pd.DataFrame, out: Path, column: str, ylabel: str, stem: str) -> list[Path]:
    if images.empty or column not in images or images[column].isna().all():
        print(f"skip {stem}: the images table has no {column} values"
              + (" (device peaks are measured on CUDA only)" if "peak" in column else ""))
        return []
    data = per_size(images, column)
    configs = sorted(data["config"].unique(), key=natural_key)
    fig, ax = plt.subplots(figsize=(style.PAGE_WIDTH_IN, 2.8))
    for config in configs:
        grp = data[data["config"] == config].sort_values("megapixels")
        encoder = config.split(" ")[0]
        encoders = sorted({c.split(" ")[0] for c in configs})
        ax.plot(grp["megapixels"], grp[column], color=style.color_of(config, configs),
                marker=style.marker_of(encoder, encoders), label=config)
    ax.set_xscale("log")
    ax.set_xlabel("image size (megapixels)")
    ax.set_ylabel(ylabel)
    style.legend_below(fig)
    return style.save(fig, out, stem)


def draw(tables: StudyTables, out: Path) -> list[Path]:
    images = tables.images
    paths = [
        *cost_vs_size(images, out, "visual_tokens", "visual tokens per image", "tokens_vs_image_size"),
        *cost_vs_size(images, out, "encode_ms", "encode latency (ms / image, median)", "latency_vs_image_size"),
        *cost_vs_size(images, out, "batch_peak_allocated_mb", "peak device memory per image (MiB)",
                      "memory_vs_image_size"),
        *quality_vs_tokens(tables.main, out),
    ]
    return paths


if __name__ == "__main__":
    sys.exit(study_main("native_vs_tiles", draw))
