"""Tests of jebm.datasets.digits: the split, dequantisation, samplers and the Gaussian baseline."""


import jax
import numpy as np
import pytest
from sklearn.datasets import load_digits as sk_load_digits

from jebm.datasets import digits


def test_split_shapes_ranges_and_labels():
    split = digits.load_digits()
    assert split.train_counts.shape == (1438, 8, 8)
    assert split.test_counts.shape == (359, 8, 8)
    assert split.train_labels.shape == (1438,) and split.test_labels.shape == (359,)
    for counts in (split.train_counts, split.test_counts):
        assert counts.dtype == np.uint8 and counts.min() == 0 and counts.max() == 16
    assert set(np.unique(split.test_labels)) == set(range(10))
    # The split is a partition of scikit-learn's images, with each label kept by its image.
    data = sk_load_digits()
    ours = np.concatenate([split.train_counts, split.test_counts]).reshape(1797, 64)
    labels = np.concatenate([split.train_labels, split.test_labels])
    key_of = lambda rows, ys: sorted(map(tuple, np.column_stack([rows, ys]).tolist()))
    assert key_of(ours, labels) == key_of(data.data.astype(np.int64), data.target)


def test_split_is_deterministic_and_depends_on_seed():
    a, b = digits.load_digits(seed=3), digits.load_digits(seed=3)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    c = digits.load_digits(seed=4)
    assert not np.array_equal(a.test_labels, c.test_labels)


def test_class_filter_and_fraction():
    split = digits.load_digits(classes=range(5), test_fraction=0.25)
    assert set(np.unique(split.train_labels)) == set(range(5))
    assert set(np.unique(split.test_labels)) == set(range(5))
    n = len(split.train_labels) + len(split.test_labels)
    assert n == int(np.isin(sk_load_digits().target, range(5)).sum())
    assert len(split.test_labels) == round(0.25 * n)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"test_fraction": 1.5}, "test_fraction"),
        ({"classes": [11]}, "classes"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        digits.load_digits(**kwargs)


def test_dequantize_stays_in_the_pixel_cell():
    counts = digits.load_digits().train_counts
    x = np.asarray(digits.dequantize(jax.random.key(0), counts))
    assert x.dtype == np.float32 and x.shape == counts.shape
    assert x.min() >= 0.0 and x.max() <= 1.0
    # x = (v + u)/17 with u in [0, 1): x lies in [v/17, (v+1)/17] up to float32 rounding of
    # the division (a few ulps of 1, < 1e-6).
    assert np.all(x >= counts / 17 - 1e-6) and np.all(x <= (counts + 1) / 17 + 1e-6)
    # E[x − v/17] = 1/34; the mean of N = 92 032 uniforms/17 has sd 1/(17 √(12 N)) = 5.6e-5,
    # so 5e-4 is ~9 sd.
    assert abs(np.mean(x - counts / 17) - 1 / 34) < 5e-4


def test_samplers_draw_fresh_dequantised_training_images():
    counts = np.stack([np.full((8, 8), v, np.uint8) for v in (0, 8, 16)])
    labels = np.array([3, 5, 7], np.int32)
    x, y = digits.labelled_sampler(counts, labels)(jax.random.key(1), 200)
    assert x.shape == (200, 8, 8) and y.shape == (200,)
    # Each image is constant-count, so its cell identifies the image and hence the label.
    cell = np.floor(np.asarray(x).mean(axis=(1, 2)) * 17).astype(int)
    np.testing.assert_array_equal(np.array([3, 5, 7])[cell // 8], np.asarray(y))
    a = digits.sampler(counts)(jax.random.key(2), 5)
    b = digits.sampler(counts)(jax.random.key(3), 5)
    assert a.shape == (5, 8, 8) and not np.allclose(a, b)
    with pytest.raises(ValueError, match="labels"):
        digits.labelled_sampler(counts, labels[:2])
