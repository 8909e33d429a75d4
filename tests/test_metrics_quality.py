"""Embedding-quality metrics against the worked facts of docs/metrics.md and property tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from harness.metrics.quality import (
    alignment,
    effective_rank,
    knn_accuracy,
    knn_predict,
    linear_cka,
    linear_probe_accuracy,
    mutual_knn,
    rankme,
    retrieval_recall_at_k,
    stability,
    stability_per_image,
    stratified_folds,
    uniformity,
)


def _unit(deg: list[float]) -> np.ndarray:
    r = np.deg2rad(deg)
    return np.stack([np.cos(r), np.sin(r)], axis=1)


def _orthogonal(d: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


# --- CKA --------------------------------------------------------------------------------


def test_cka_kornblith_demo_numbers():
    np.random.seed(1337)
    x = np.random.randn(100, 10)
    y = np.random.randn(100, 10) + x
    assert linear_cka(x, y) == pytest.approx(0.55761, abs=5e-6)
    assert linear_cka(x, y, debiased=True) == pytest.approx(0.51346, abs=5e-6)


def test_cka_gram_path_agrees():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 5)), rng.normal(size=(30, 8))
    h = np.eye(30) - 1 / 30
    k, ell = h @ x @ x.T @ h, h @ y @ y.T @ h
    gram = np.trace(k @ ell) / math.sqrt(np.trace(k @ k) * np.trace(ell @ ell))
    assert linear_cka(x, y) == pytest.approx(gram, rel=1e-10)


def test_cka_closed_form_and_1d():
    x = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], float)
    assert linear_cka(x, x @ np.diag([1, 2])) == pytest.approx(5 / math.sqrt(34), abs=1e-9)
    assert linear_cka([1, 2, 3, 4], [1, 2, 3, 5]) == pytest.approx(169 / 175, abs=1e-12)


def test_cka_invariances_and_non_invariance():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 6))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, x @ _orthogonal(6, 2)) == pytest.approx(1.0, abs=1e-10)
    assert linear_cka(x, 3.7 * x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, x + 5) == pytest.approx(1.0, abs=1e-10)
    assert linear_cka(x, x @ rng.normal(size=(6, 6))) < 0.99


def test_cka_rejects_mismatched_rows():
    with pytest.raises(ValueError, match="same number of rows"):
        linear_cka(np.ones((4, 2)), np.ones((5, 2)))


_matrices = arrays(np.float64, st.tuples(st.integers(5, 12), st.integers(1, 5)),
                   elements=st.floats(-10, 10, allow_nan=False, width=64))


def _nondegenerate(x: np.ndarray) -> bool:
    c = x - x.mean(0)
    return np.linalg.norm(c) > 1e-3 and np.linalg.norm(c.T @ c) > 1e-3


@settings(max_examples=40, deadline=None)
@given(_matrices, st.integers(0, 10_000), st.floats(0.1, 10), st.floats(-5, 5))
def test_cka_properties(x, seed, scale, shift):
    if not _nondegenerate(x):
        return
    y = np.random.default_rng(seed).normal(size=(x.shape[0], 3))
    value = linear_cka(x, y)
    assert -1e-12 <= value <= 1 + 1e-12
    assert value == pytest.approx(linear_cka(y, x), abs=1e-9)
    q = _orthogonal(x.shape[1], seed)
    assert linear_cka(x @ q * scale + shift, y) == pytest.approx(value, abs=1e-6)


# --- mutual kNN -------------------------------------------------------------------------


def test_mutual_knn_worked_example():
    a, b = _unit([0, 10, 90, 100]), _unit([0, 10, 90, 200])
    assert mutual_knn(a, b, k=1) == pytest.approx(0.75)
    assert mutual_knn(a, a, k=1) == 1.0


def test_mutual_knn_random_is_about_k_over_n():
    rng = np.random.default_rng(0)
    n, k = 200, 10
    value = mutual_knn(rng.normal(size=(n, 16)), rng.normal(size=(n, 16)), k=k)
    assert abs(value - k / (n - 1)) < 0.03


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 5))
def test_mutual_knn_self_and_rotation(seed, k):
    x = np.random.default_rng(seed).normal(size=(12, 4))
    assert mutual_knn(x, x, k=k) == 1.0
    assert mutual_knn(x, 2.5 * x @ _orthogonal(4, seed + 1), k=k) == 1.0


# --- alignment / uniformity -------------------------------------------------------------


def test_uniformity_worked_values():
    assert uniformity([[1, 0], [-1, 0]]) == pytest.approx(-8.0)
    assert uniformity([[1, 0], [-1, 0], [0, 1], [0, -1]]) == pytest.approx(-4.396349, abs=1e-6)
    assert uniformity(np.ones((3, 2))) == pytest.approx(0.0)
    assert math.log((4 * math.exp(-4) + 2 * math.exp(-8)) / 6) == pytest.approx(-4.396349, abs=1e-6)


def test_alignment_worked_values():
    x = _unit([0, 33, 120, 250])
    assert alignment(x, x) == pytest.approx(0.0)
    assert alignment(x, -x) == pytest.approx(4.0)
    assert alignment(x, _unit([90, 123, 210, 340])) == pytest.approx(2.0)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 20))
def test_uniformity_bounds(seed, n):
    x = np.random.default_rng(seed).normal(size=(n, 3))
    assert -8.0 - 1e-9 <= uniformity(x) <= 1e-12


# --- effective rank / RankMe ------------------------------------------------------------


def test_erank_worked_values():
    assert effective_rank(np.eye(6)) == pytest.approx(6.0)
    u = np.arange(1, 5.0)[:, None]
    assert effective_rank(u @ np.arange(1, 4.0)[None]) == pytest.approx(1.0)
    assert effective_rank(np.diag([3.0, 1.0])) == pytest.approx(1.754765, abs=1e-6)
    assert effective_rank(7 * np.diag([3.0, 1.0])) == pytest.approx(1.754765, abs=1e-6)
    assert effective_rank(np.diag([1.0, 1.0, 0.0])) == pytest.approx(2.0)
    # The covariance-eigenvalue variant would give 1.384145 for diag(3, 1).
    assert abs(effective_rank(np.diag([3.0, 1.0])) - 1.384145) > 0.3


def test_rankme_eps():
    assert rankme(np.eye(5)) == pytest.approx(5.0000015, abs=2e-7)
    assert rankme(np.eye(5), eps=0) == pytest.approx(5.0)
    assert rankme(np.eye(5)) != effective_rank(np.eye(5))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 10), st.integers(1, 6), st.floats(0.01, 100))
def test_erank_properties(seed, n, d, scale):
    x = np.random.default_rng(seed).normal(size=(n, d))
    r = np.linalg.matrix_rank(x)
    value = effective_rank(x)
    assert 1 - 1e-9 <= value <= r + 1e-9
    assert effective_rank(scale * x) == pytest.approx(value, rel=1e-9)
    assert effective_rank(x @ _orthogonal(d, seed)) == pytest.approx(value, rel=1e-7)


# --- kNN, probe, retrieval --------------------------------------------------------------


def test_weighted_knn_beats_majority_example():
    # Test point e1; neighbours at cosine 0.9 (A), 0.8 and 0.7 (B); one far point.
    sims = [0.9, 0.8, 0.7, -0.9]
    train = np.array([[s, math.sqrt(1 - s * s), 0] if i % 2 == 0 else [s, 0, math.sqrt(1 - s * s)]
                      for i, s in enumerate(sims)])
    labels = ["A", "B", "B", "A"]
    test = np.array([[1.0, 0, 0]])
    assert knn_predict(train, labels, test, k=3, temperature=0.07)[0] == "A"
    # With a huge temperature the vote becomes a plain majority: B.
    assert knn_predict(train, labels, test, k=3, temperature=1e6)[0] == "B"
    assert math.exp(0.9 / 0.07) == pytest.approx(383518, rel=1e-5)
    assert math.exp(0.8 / 0.07) + math.exp(0.7 / 0.07) == pytest.approx(113937, rel=1e-5)
    assert knn_accuracy(train, labels, test, ["A"], k=3) == 1.0


def test_knn_leave_one_out_excludes_self():
    x = np.array([[1.0, 0], [0.99, 0.1], [0, 1.0], [0.1, 0.99]])
    labels = ["a", "b", "c", "d"]  # every point's own label is unique: LOO accuracy must be 0
    assert knn_accuracy(x, labels, x, labels, k=1) == 1.0
    assert knn_accuracy(x, labels, x, labels, k=1, exclude_self=True) == 0.0
    with pytest.raises(ValueError, match="k must be"):
        knn_accuracy(x, labels, x, labels, k=4, exclude_self=True)


def test_retrieval_worked_example():
    scores = np.array([[0.9, 0.1], [0.2, 0.3], [0.4, 0.8]])
    positives = np.array([[1, 0], [1, 0], [0, 1]], bool)
    assert retrieval_recall_at_k(scores, positives, k=1) == pytest.approx(2 / 3)
    assert retrieval_recall_at_k(scores.T, positives.T, k=1) == pytest.approx(1.0)
    assert retrieval_recall_at_k(scores, positives, k=2) == pytest.approx(1.0)


def test_stratified_folds_deterministic_and_balanced():
    labels = np.repeat(["x", "y", "z"], [6, 6, 3])
    folds = stratified_folds(labels, 3, seed=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(15))
    assert [len(f) for f in folds] == [5, 5, 5]
    for f in folds:
        assert set(labels[f]) == {"x", "y", "z"}
    assert all((a == b).all() for a, b in zip(folds, stratified_folds(labels, 3, seed=0), strict=True))


def test_linear_probe_separable_and_chance():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 12)
    separable = rng.normal(scale=0.05, size=(36, 6)) + np.eye(6)[labels] * 3
    result = linear_probe_accuracy(separable, labels, n_folds=3, weight_decays=(1e-3, 1e-1, 10))
    assert result["accuracy"] == 1.0
    assert result["weight_decay"] in (1e-3, 1e-1, 10)
    noise = rng.normal(size=(36, 6))
    again = linear_probe_accuracy(noise, labels, n_folds=3, weight_decays=(1e-3, 1e-1, 10))
    assert again["accuracy"] < 0.75  # 3 classes, pure noise
    assert linear_probe_accuracy(noise, labels, n_folds=3, weight_decays=(1e-3, 1e-1, 10)) == again
    with pytest.raises(ValueError, match="at least 2 classes"):
        linear_probe_accuracy(noise, np.zeros(36), n_folds=3)


# --- stability --------------------------------------------------------------------------


def test_stability_values():
    x = _unit([0, 45, 90])
    np.testing.assert_allclose(stability_per_image(x, x), 1.0)
    np.testing.assert_allclose(stability_per_image(x, _unit([0, 45, 180])), [1.0, 1.0, 0.0], atol=1e-12)
    assert stability(x, -x) == pytest.approx(-1.0)
    assert stability(x, _unit([90, 135, 180])) == pytest.approx(1 - alignment(x, _unit([90, 135, 180])) / 2)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.01, 100))
def test_stability_identical_is_one(seed, scale):
    x = np.random.default_rng(seed).normal(size=(7, 5))
    assert stability(x, scale * x) == pytest.approx(1.0)
