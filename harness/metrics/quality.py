"""Embedding-quality measures: pure functions of embedding matrices (rows = images).

Each docstring states the formula and where it comes from (see
`docs/metrics.md`). Inputs are array-likes `[n, d]`; nothing here
loads a model or a file.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

ArrayLike = np.ndarray | Sequence


def _matrix(x: ArrayLike, name: str = "x") -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [n, d]; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return arr


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _same_rows(x: np.ndarray, y: np.ndarray) -> None:
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have the same number of rows (images); got {x.shape[0]} and {y.shape[0]}")


# --- classification and retrieval -------------------------------------------------------


def knn_predict(
    train: ArrayLike, train_labels: Sequence, test: ArrayLike, k: int = 20, temperature: float = 0.07,
    exclude_self: bool = False,
) -> np.ndarray:
    """Weighted k-NN predictions (DINO, `facebookresearch/dino:eval_knn.py`, `knn_classifier`).

    Features are L2-normalised; sim = cosine; among the top-k train neighbours, class score
    = sum over that class's neighbours of exp(sim / T); predict the argmax (ties: first class
    in sorted order). `exclude_self=True` (train is test) masks the diagonal: leave-one-out.
    """
    tr, te = _l2_normalize(_matrix(train, "train")), _l2_normalize(_matrix(test, "test"))
    labels = np.asarray(train_labels)
    if labels.shape[0] != tr.shape[0]:
        raise ValueError(f"train_labels has {labels.shape[0]} entries for {tr.shape[0]} train rows")
    n_train = tr.shape[0] - (1 if exclude_self else 0)
    if not 1 <= k <= n_train:
        raise ValueError(f"k must be in 1..{n_train} (available neighbours); got {k}")
    sims = te @ tr.T
    if exclude_self:
        np.fill_diagonal(sims, -np.inf)
    classes, codes = np.unique(labels, return_inverse=True)
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    top_sims = np.take_along_axis(sims, top, axis=1)
    weights = np.exp(top_sims / temperature)
    votes = np.zeros((te.shape[0], len(classes)))
    np.add.at(votes, (np.repeat(np.arange(te.shape[0]), k), codes[top].ravel()), weights.ravel())
    return classes[np.argmax(votes, axis=1)]


def knn_accuracy(
    train: ArrayLike, train_labels: Sequence, test: ArrayLike, test_labels: Sequence, k: int = 20,
    temperature: float = 0.07, exclude_self: bool = False,
) -> float:
    """Top-1 accuracy (fraction in [0, 1]) of the weighted k-NN classifier `knn_predict`.

    DINO's defaults: T = 0.07, k = 20. Pass the same set as train and test with
    `exclude_self=True` for leave-one-out accuracy.
    """
    pred = knn_predict(train, train_labels, test, k=k, temperature=temperature, exclude_self=exclude_self)
    truth = np.asarray(test_labels)
    if truth.shape[0] != pred.shape[0]:
        raise ValueError(f"test_labels has {truth.shape[0]} entries for {pred.shape[0]} test rows")
    return float(np.mean(pred == truth))


def stratified_folds(labels: Sequence, n_folds: int, seed: int = 0) -> list[np.ndarray]:
    """Deterministic stratified folds: each class's indices, shuffled with `seed`, dealt
    round-robin to the folds (so every fold gets each class once it has n_folds members)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(n_folds)]
    offset = 0
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        for j, i in enumerate(idx):
            folds[(offset + j) % n_folds].append(int(i))
        offset += len(idx)
    return [np.sort(np.asarray(f, dtype=int)) for f in folds]


def _fit_logreg(
    x: np.ndarray, y: np.ndarray, n_classes: int, weight_decay: float, init: torch.Tensor | None = None,
) -> torch.Tensor:
    """Multinomial logistic regression (with bias) by L-BFGS in float64; loss = mean
    cross-entropy + weight_decay/2 * ||W||^2 (bias not penalised). Convex, so deterministic;
    `init` warm-starts along a regularisation path (strong to weak)."""
    xt = torch.as_tensor(x, dtype=torch.float64)
    yt = torch.as_tensor(y, dtype=torch.long)
    w = torch.zeros(x.shape[1] + 1, n_classes, dtype=torch.float64) if init is None else init.clone()
    w.requires_grad_(True)
    ones = torch.ones(x.shape[0], 1, dtype=torch.float64)
    xb = torch.cat([xt, ones], dim=1)
    opt = torch.optim.LBFGS([w], lr=1.0, max_iter=100, tolerance_grad=1e-6, tolerance_change=1e-9,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xb @ w, yt) + 0.5 * weight_decay * (w[:-1] ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach()


def _logreg_accuracy(w: torch.Tensor, x: np.ndarray, y: np.ndarray) -> float:
    xb = torch.cat([torch.as_tensor(x, dtype=torch.float64), torch.ones(x.shape[0], 1, dtype=torch.float64)], 1)
    return float((torch.argmax(xb @ w, dim=1).numpy() == y).mean())


WEIGHT_DECAYS = tuple(float(v) for v in np.logspace(-6, 2, 9))


def linear_probe_accuracy(
    x: ArrayLike, labels: Sequence, n_folds: int = 5, weight_decays: Sequence[float] = WEIGHT_DECAYS, seed: int = 0,
) -> dict[str, object]:
    """Cross-validated linear-probe accuracy with the weight decay chosen on held-out folds.

    Protocol (after CLIP's L-BFGS logistic regression and `LAION-AI/CLIP_benchmark`'s
    `linear_probe.py`, which L2-normalises features and searches wd over `np.logspace(-6, 2, ·)`):
    L2-normalise features; split into `n_folds` stratified folds (fixed `seed`); for each outer
    fold, pick wd from `weight_decays` by mean accuracy on inner folds of the remaining data
    (nested CV; ties -> larger wd), refit on all remaining data, score the outer fold.
    Returns `accuracy` (mean over outer folds, in [0, 1]), `accuracy_std`, `weight_decay`
    (the most often chosen value), `weight_decays_chosen` (per fold) and `n_folds`.
    """
    feats = _l2_normalize(_matrix(x))
    labels = np.asarray(labels)
    if labels.shape[0] != feats.shape[0]:
        raise ValueError(f"labels has {labels.shape[0]} entries for {feats.shape[0]} rows")
    classes, y = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise ValueError("a linear probe needs at least 2 classes")
    if n_folds < 2 or np.bincount(y).min() < n_folds:
        raise ValueError(f"every class needs at least n_folds={n_folds} (>= 2) samples; counts {np.bincount(y)}")
    grid = sorted(float(v) for v in weight_decays)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convex fits: extra threads only add contention
    try:
        return _nested_probe(feats, y, len(classes), n_folds, grid, seed)
    finally:
        torch.set_num_threads(threads)


def _nested_probe(
    feats: np.ndarray, y: np.ndarray, n_classes: int, n_folds: int, grid: list[float], seed: int,
) -> dict[str, object]:
    outer = stratified_folds(y, n_folds, seed)
    accs, chosen = [], []
    for test_idx in outer:
        train_idx = np.setdiff1d(np.arange(len(y)), test_idx)
        inner_folds = min(n_folds - 1, int(np.bincount(y[train_idx], minlength=n_classes).min()))
        best_wd = grid[-1]
        if inner_folds >= 2:
            inner = stratified_folds(y[train_idx], inner_folds, seed + 1)
            fold_accs = np.zeros((len(grid), len(inner)))
            for j, val in enumerate(inner):
                fit = np.setdiff1d(np.arange(len(train_idx)), val)
                w = None
                for i in reversed(range(len(grid))):  # strong to weak, warm-started
                    w = _fit_logreg(feats[train_idx][fit], y[train_idx][fit], n_classes, grid[i], w)
                    fold_accs[i, j] = _logreg_accuracy(w, feats[train_idx][val], y[train_idx][val])
            scores = fold_accs.mean(axis=1).tolist()
            best = max(scores)
            best_wd = max(wd for wd, s in zip(grid, scores, strict=True) if s >= best - 1e-12)
        w = _fit_logreg(feats[train_idx], y[train_idx], n_classes, best_wd)
        accs.append(_logreg_accuracy(w, feats[test_idx], y[test_idx]))
        chosen.append(best_wd)
    values, counts = np.unique(chosen, return_counts=True)
    return {
        "accuracy": float(np.mean(accs)),
        "accuracy_std": float(np.std(accs)),
        "weight_decay": float(values[np.argmax(counts)]),
        "weight_decays_chosen": chosen,
        "n_folds": n_folds,
    }


def retrieval_recall_at_k(scores: ArrayLike, positives: ArrayLike, k: int = 5) -> float:
    """Recall@k of retrieval (`LAION-AI/CLIP_benchmark:zeroshot_retrieval.py`).

    `scores[q, c]` is the score of candidate c for query q; `positives[q, c]` is True where c
    is a correct answer for q. A query counts 1 if at least one positive is in its top-k;
    the result is the mean over queries. For CLIP_benchmark's `image_retrieval_recall@k` pass
    text-by-image scores; for `text_retrieval_recall@k` pass their transpose.
    """
    s = _matrix(scores, "scores")
    pos = np.asarray(positives, dtype=bool)
    if pos.shape != s.shape:
        raise ValueError(f"positives must have the shape of scores {s.shape}; got {pos.shape}")
    if not 1 <= k <= s.shape[1]:
        raise ValueError(f"k must be in 1..{s.shape[1]}; got {k}")
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.take_along_axis(pos, top, axis=1).any(axis=1)))


# --- representation similarity ----------------------------------------------------------


def linear_cka(x: ArrayLike, y: ArrayLike, debiased: bool = False) -> float:
    """Linear CKA (Kornblith et al., ICML 2019; `google-research:representation_similarity`).

    Biased: centre columns, CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F), in [0, 1].
    Debiased (`debiased=True`): the same ratio with the unbiased HSIC estimator of Song et
    al. (2007), as the demo's `feature_space_linear_cka(..., debiased=True)`; needs n >= 4,
    may be negative. Invariant to orthogonal maps, isotropic scaling and translation.
    """
    a, b = _matrix(x, "x"), _matrix(y, "y")
    _same_rows(a, b)
    n = a.shape[0]
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    if not debiased:
        num = np.linalg.norm(b.T @ a) ** 2
        den = np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b)
        return float(num / den) if den > 0 else float("nan")
    if n < 4:
        raise ValueError(f"debiased CKA needs at least 4 rows; got {n}")

    def unbiased(dot: float, sq_a: np.ndarray, sq_b: np.ndarray) -> float:
        # Kornblith's _debiased_dot_product_similarity_helper.
        return float(
            dot - n / (n - 2.0) * np.dot(sq_a, sq_b) + sq_a.sum() * sq_b.sum() / ((n - 1) * (n - 2))
        )

    sa, sb = np.einsum("ij,ij->i", a, a), np.einsum("ij,ij->i", b, b)
    num = unbiased(np.linalg.norm(b.T @ a) ** 2, sa, sb)
    den_a = unbiased(np.linalg.norm(a.T @ a) ** 2, sa, sa)
    den_b = unbiased(np.linalg.norm(b.T @ b) ** 2, sb, sb)
    return float(num / np.sqrt(den_a * den_b))


def _knn_sets(x: np.ndarray, k: int) -> np.ndarray:
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def mutual_knn(x: ArrayLike, y: ArrayLike, k: int = 10, normalize: bool = True) -> float:
    """Mutual k-NN alignment (Huh et al., ICML 2024; `minyoungg/platonic-rep:metrics.py`).

    For each row i, S_X(i) and S_Y(i) are its k nearest other rows by inner product (self
    excluded), after L2-normalisation when `normalize` (as `measure_alignment.py` does);
    score = mean_i |S_X(i) ∩ S_Y(i)| / k, in [0, 1]. Independent features give ~k/(n-1).
    """
    a, b = _matrix(x, "x"), _matrix(y, "y")
    _same_rows(a, b)
    n = a.shape[0]
    if not 1 <= k <= n - 1:
        raise ValueError(f"k must be in 1..{n - 1} (n - 1 neighbours); got {k}")
    if normalize:
        a, b = _l2_normalize(a), _l2_normalize(b)
    na, nb = _knn_sets(a, k), _knn_sets(b, k)
    overlap = [len(np.intersect1d(na[i], nb[i])) for i in range(n)]
    return float(np.mean(overlap) / k)


def alignment(x: ArrayLike, y: ArrayLike, alpha: float = 2) -> float:
    """Alignment loss (Wang & Isola, ICML 2020; `SsnL/align_uniform`): on L2-normalised
    rows, mean_i ||x_i - y_i||^alpha over positive pairs (x_i, y_i). Lower is better; with
    alpha = 2 it equals 2 - 2 * mean cosine, in [0, 4]."""
    a, b = _l2_normalize(_matrix(x, "x")), _l2_normalize(_matrix(y, "y"))
    if a.shape != b.shape:
        raise ValueError(f"x and y must have the same shape; got {a.shape} and {b.shape}")
    return float(np.mean(np.linalg.norm(a - b, axis=1) ** alpha))


def uniformity(x: ArrayLike, t: float = 2) -> float:
    """Uniformity loss (Wang & Isola, ICML 2020; `SsnL/align_uniform`): on L2-normalised
    rows, log mean_{i<j} exp(-t ||x_i - x_j||^2). Lower is better; 0 for a collapsed set,
    minimum -4t (two antipodal points). Computed with log-sum-exp for stability."""
    a = _l2_normalize(_matrix(x))
    n = a.shape[0]
    if n < 2:
        raise ValueError(f"uniformity needs at least 2 rows; got {n}")
    i, j = np.triu_indices(n, k=1)
    sq = np.sum((a[i] - a[j]) ** 2, axis=1)
    z = -t * sq
    m = z.max()
    return float(m + np.log(np.mean(np.exp(z - m))))


def _singular_entropy_rank(x: ArrayLike, eps: float) -> float:
    s = np.linalg.svd(_matrix(x), compute_uv=False)
    total = s.sum()
    if total <= 0:
        raise ValueError("effective rank of an all-zero matrix is undefined")
    p = s / total + eps
    p = p[p > 0]
    return float(np.exp(-np.sum(p * np.log(p))))


def effective_rank(x: ArrayLike) -> float:
    """Effective rank (Roy & Vetterli, EUSIPCO 2007): with singular values s_k of x and
    p_k = s_k / sum_j s_j, erank = exp(-sum_k p_k ln p_k) (0 ln 0 := 0). 1 <= erank <= rank;
    invariant to scaling and orthogonal maps. Uses singular values, not covariance
    eigenvalues (s_k^2), and does not centre."""
    return _singular_entropy_rank(x, 0.0)


def rankme(x: ArrayLike, eps: float = 1e-7) -> float:
    """RankMe (Garrido et al., ICML 2023, arXiv:2210.02885, Eq. 1): the effective rank of the
    (uncentred) embedding matrix with p_k = s_k / ||s||_1 + eps (eps = 1e-7 as usual for
    float32 embeddings)."""
    return _singular_entropy_rank(x, eps)


def stability_per_image(x_strategy: ArrayLike, x_reference: ArrayLike) -> np.ndarray:
    """Cosine similarity, row by row, between one encoder's pooled embeddings of the same
    images under two preprocessing strategies (1 = the strategy changes nothing)."""
    a, b = _l2_normalize(_matrix(x_strategy, "x_strategy")), _l2_normalize(_matrix(x_reference, "x_reference"))
    if a.shape != b.shape:
        raise ValueError(f"both embeddings must have the same shape; got {a.shape} and {b.shape}")
    return np.einsum("ij,ij->i", a, b)


def stability(x_strategy: ArrayLike, x_reference: ArrayLike) -> float:
    """Mean over images of `stability_per_image` (mean cosine; = 1 - alignment(alpha=2)/2)."""
    return float(np.mean(stability_per_image(x_strategy, x_reference)))
