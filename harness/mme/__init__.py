"""MME in one place: its subtasks and prompt texts (`subtasks`), the dataset loader (`data`),
the official scoring and paper table (`scoring`), CLIP image-text similarities (`clip_similarity`)
and the encoder-only baseline command (`baseline`). Rules and sources: docs/mme.md."""
