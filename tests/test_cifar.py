"""CIFAR-10 binary loader on tiny batch files written here in the same byte format."""

import numpy as np
import pytest

from jebm.datasets import load_cifar10
from jebm.datasets.cifar import CIFAR10_TEST_FILE, CIFAR10_TRAIN_FILES, read_cifar10_batch


def records(images: np.ndarray, labels: np.ndarray) -> bytes:
    """The binary format from its definition: label byte, then R, G, B planes, row-major."""
    out = b""
    for image, label in zip(images, labels, strict=True):
        out += bytes([int(label)]) + image.transpose(2, 0, 1).tobytes()  # HWC -> CHW
    return out


def write_batches(directory, rng, n=3):
    directory.mkdir(parents=True, exist_ok=True)
    data = {}
    for name in (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE):
        images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        (directory / name).write_bytes(records(images, labels))
        data[name] = (images, labels)
    return data


def test_round_trip(tmp_path):
    data = write_batches(tmp_path / "cifar-10-batches-bin", np.random.default_rng(0))
    for path in (tmp_path, tmp_path / "cifar-10-batches-bin"):
        split = load_cifar10(path)
        np.testing.assert_array_equal(
            split.train_images, np.concatenate([data[f][0] for f in CIFAR10_TRAIN_FILES])
        )
        np.testing.assert_array_equal(
            split.train_labels, np.concatenate([data[f][1] for f in CIFAR10_TRAIN_FILES])
        )
        np.testing.assert_array_equal(split.test_images, data[CIFAR10_TEST_FILE][0])
        np.testing.assert_array_equal(split.test_labels, data[CIFAR10_TEST_FILE][1])
        assert split.train_images.shape == (15, 32, 32, 3) and split.test_labels.dtype == np.int32


def test_channel_order(tmp_path):
    # One record: red plane all 1, green all 2, blue all 3 -> pixel (i, j) = (1, 2, 3).
    path = tmp_path / "one.bin"
    path.write_bytes(bytes([7]) + bytes([1]) * 1024 + bytes([2]) * 1024 + bytes([3]) * 1024)
    images, labels = read_cifar10_batch(path)
    assert labels.tolist() == [7]
    assert images.shape == (1, 32, 32, 3)
    assert (images[0] == np.array([1, 2, 3], np.uint8)).all()


def test_truncated_and_wrong_files(tmp_path):
    write_batches(tmp_path, np.random.default_rng(1))
    path = tmp_path / "data_batch_3.bin"
    good = path.read_bytes()
    path.write_bytes(good[:-100])
    with pytest.raises(ValueError, match="data_batch_3.bin.*3073-byte"):
        load_cifar10(tmp_path)
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="data_batch_3.bin"):
        load_cifar10(tmp_path)
    path.write_bytes(bytes([11]) + good[1:])  # label byte 11
    with pytest.raises(ValueError, match="label byte 11"):
        load_cifar10(tmp_path)
    path.unlink()
    with pytest.raises(ValueError, match="lacks data_batch_3.bin"):
        load_cifar10(tmp_path)


def test_refuses_the_python_version(tmp_path):
    # The Python version's directory layout (files without .bin) ...
    py_dir = tmp_path / "cifar-10-batches-py"
    py_dir.mkdir()
    (py_dir / "data_batch_1").write_bytes(b"\x80\x02}q\x00.")  # bytes of a pickle header
    with pytest.raises(ValueError, match="pickled Python version.*cifar-10-binary.tar.gz"):
        load_cifar10(py_dir)
    with pytest.raises(ValueError, match="pickled Python version"):
        load_cifar10(tmp_path)  # the parent of cifar-10-batches-py
    # ... and a pickle file given as a batch, whatever its name.
    fake = tmp_path / "data_batch_1.bin"
    fake.write_bytes(b"\x80\x02}q\x00(X\x05\x00\x00\x00batchq\x01." + bytes(3073 * 2))
    with pytest.raises(ValueError, match="pickled Python version.*cifar-10-batches-bin"):
        read_cifar10_batch(fake)
