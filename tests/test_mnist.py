"""MNIST / Fashion-MNIST loaders on tiny idx files written here in the same byte format."""

import gzip
import struct

import jax
import numpy as np
import pytest

from jebm.datasets import ImageSplit, load_fashion_mnist, load_mnist
from jebm.datasets.mnist import MNIST_FILES, read_idx


def idx_bytes(array: np.ndarray) -> bytes:
    """The idx-ubyte encoding, written from the format's definition (not by the loader)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_split(directory, rng, *, n_train=5, n_test=3, gz=False, shape=(4, 3)):
    data = {
        "train_images": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for part, array in data.items():
        raw = idx_bytes(array)
        name = MNIST_FILES[part] + (".gz" if gz else "")
        (directory / name).write_bytes(gzip.compress(raw) if gz else raw)
    return data


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_round_trip(tmp_path, gz):
    data = write_split(tmp_path, np.random.default_rng(0), gz=gz)
    for loader in (load_mnist, load_fashion_mnist):
        split = loader(tmp_path)
        assert isinstance(split, ImageSplit)
        np.testing.assert_array_equal(split.train_images, data["train_images"])
        np.testing.assert_array_equal(split.test_images, data["test_images"])
        np.testing.assert_array_equal(split.train_labels, data["train_labels"])
        np.testing.assert_array_equal(split.test_labels, data["test_labels"])
        assert split.train_images.dtype == np.uint8 and split.train_labels.dtype == np.int32


def test_read_idx_known_bytes(tmp_path):
    # Hand-written file: 2×3 ubyte matrix [[1, 2, 3], [4, 5, 6]].
    path = tmp_path / "m.idx"
    path.write_bytes(bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6]))
    np.testing.assert_array_equal(read_idx(path), [[1, 2, 3], [4, 5, 6]])


def test_truncated_and_padded_files(tmp_path):
    write_split(tmp_path, np.random.default_rng(1))
    path = tmp_path / MNIST_FILES["train_images"]
    good = path.read_bytes()
    path.write_bytes(good[:-7])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*truncated"):
        load_mnist(tmp_path)
    path.write_bytes(good + b"\x00")
    with pytest.raises(ValueError, match="truncated or not what its header says"):
        load_mnist(tmp_path)
    path.write_bytes(good[:6])
    with pytest.raises(ValueError, match="truncated idx header"):
        read_idx(path)


def test_truncated_gzip(tmp_path):
    write_split(tmp_path, np.random.default_rng(2), gz=True)
    path = tmp_path / (MNIST_FILES["test_labels"] + ".gz")
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz.*gzip"):
        load_mnist(tmp_path)


def test_wrong_files(tmp_path):
    write_split(tmp_path, np.random.default_rng(3))
    (tmp_path / MNIST_FILES["train_labels"]).write_bytes(b"PK\x03\x04 not an idx file")
    with pytest.raises(ValueError, match="not an idx file"):
        load_mnist(tmp_path)
    # float type code
    (tmp_path / MNIST_FILES["train_labels"]).write_bytes(bytes([0, 0, 0x0D, 1, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="type code 0x0d"):
        load_mnist(tmp_path)


def test_inconsistent_split(tmp_path):
    rng = np.random.default_rng(4)
    write_split(tmp_path, rng)
    labels = tmp_path / MNIST_FILES["train_labels"]
    labels.write_bytes(idx_bytes(np.array([1, 2, 3], np.uint8)))  # 5 images, 3 labels
    with pytest.raises(ValueError, match="5 images but .* 3 labels"):
        load_mnist(tmp_path)
    labels.write_bytes(idx_bytes(np.array([1, 2, 3, 4, 12], np.uint8)))
    with pytest.raises(ValueError, match="label 12"):
        load_mnist(tmp_path)
    (tmp_path / MNIST_FILES["train_images"]).write_bytes(idx_bytes(np.zeros((5, 12), np.uint8)))
    with pytest.raises(ValueError, match=r"must be \(n, H, W\)"):
        load_mnist(tmp_path)


def test_missing_files(tmp_path):
    with pytest.raises(ValueError, match="t10k|train"):
        load_mnist(tmp_path)
    with pytest.raises(ValueError, match="not a directory"):
        load_fashion_mnist(tmp_path / "nowhere")


def test_mnist_config_builds_a_run_from_data_path(tmp_path):
    from jebm import experiment
    from jebm.config import load_config

    rng = np.random.default_rng(3)
    write_split(tmp_path, rng, n_train=20, n_test=6, shape=(8, 8))
    cfg = load_config(None, ["data.name=mnist", f"data.path={tmp_path}", "model.kind=conv",
                             "model.hidden=[8]", "model.features=[4]", "data.batch_size=4",
                             "objective.buffer_size=16", "objective.num_chains=4",
                             "objective.init_low=0.0", "objective.init_high=1.0"])
    run = experiment.build_run(cfg)
    assert run.data.event_shape == (8, 8) and run.data.test.shape == (6, 8, 8)
    batch = run.data.sample(jax.random.key(0), 4)
    # uint8 pixels dequantised into their bins: (p + u) / 256 lies in [p/256, (p+1)/256)
    assert float(batch.min()) >= 0.0 and float(batch.max()) < 1.0
    with pytest.raises(ValueError, match="data.path"):
        experiment.build_run(load_config(None, ["data.name=mnist"]))
