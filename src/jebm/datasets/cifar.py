"""CIFAR-10 from its *binary* version, from a given path; the pickled Python version is refused.

jebm never downloads and never unpickles. Point :func:`load_cifar10` at the directory
``cifar-10-batches-bin`` of ``cifar-10-binary.tar.gz`` (the "CIFAR-10 binary version (suitable
for C programs)" on the data set's page). It holds ``data_batch_1.bin`` … ``data_batch_5.bin``
(training) and ``test_batch.bin``; each is a sequence of 3073-byte records: one label byte
(0–9), then 1024 red, 1024 green and 1024 blue bytes of a 32×32 image in row-major order.

The Python version (``cifar-10-batches-py``, files ``data_batch_1`` … without extension) is a
set of pickles. Unpickling runs arbitrary code, so a directory or file of that version raises
a ``ValueError`` that names the binary archive to use instead.

References:
  Krizhevsky, A. (2009). Learning multiple layers of features from tiny images. Technical
  report, University of Toronto.
"""

import os
from pathlib import Path

import numpy as np

from jebm.datasets.labels import NUM_CLASSES
from jebm.datasets.mnist import ImageSplit

__all__ = ["read_cifar10_batch", "load_cifar10", "CIFAR10_TRAIN_FILES", "CIFAR10_TEST_FILE",
           "RECORD_BYTES", "IMAGE_SHAPE"]  # fmt: skip

CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch.bin"
IMAGE_SHAPE = (32, 32, 3)
RECORD_BYTES = 1 + 32 * 32 * 3
_PICKLE_PROTOCOL = 0x80  # first byte of a pickle of protocol >= 2
_USE_BINARY = (
    "jebm does not unpickle (it can run arbitrary code). Download the binary version, "
    "cifar-10-binary.tar.gz, and give the directory cifar-10-batches-bin (data_batch_1.bin … "
    "data_batch_5.bin, test_batch.bin)."
)


def _refuse_python_version(path: Path) -> None:
    raise ValueError(f"{path} is the pickled Python version of CIFAR-10. {_USE_BINARY}")


def read_cifar10_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 binary batch file.

    Args:
      path: a ``*.bin`` batch file.

    Returns:
      ``(images (n, 32, 32, 3) uint8, labels (n,) int32)``, images channels-last (as
      :class:`jebm.energies.conv.ConvEnergy` expects).

    Raises:
      ValueError: naming the file, for a pickle (the Python version), an empty file, a
        length that is not a whole number of 3073-byte records (truncated or not CIFAR-10)
        or a label byte outside 0–9.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ValueError(f"cannot read {path}: {err}") from err
    if raw[:1] == bytes([_PICKLE_PROTOCOL]):  # a binary record starts with a label 0..9
        _refuse_python_version(path)
    if not raw or len(raw) % RECORD_BYTES:
        raise ValueError(
            f"{path}: {len(raw)} bytes is not a whole number of {RECORD_BYTES}-byte CIFAR-10 "
            "records (1 label + 3072 pixels); the file is truncated or not a CIFAR-10 binary "
            "batch."
        )
    records = np.frombuffer(raw, np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0].astype(np.int32)
    if labels.max() >= NUM_CLASSES:
        bad = int(np.argmax(labels >= NUM_CLASSES))
        raise ValueError(
            f"{path}: record {bad} has label byte {labels[bad]} (not 0..9); not a CIFAR-10 "
            "binary batch (CIFAR-100's binary records have two label bytes)."
        )
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def load_cifar10(path: str | os.PathLike) -> ImageSplit:
    """Load CIFAR-10's binary version from ``cifar-10-batches-bin`` (or its parent directory).

    Args:
      path: the directory holding :data:`CIFAR10_TRAIN_FILES` and :data:`CIFAR10_TEST_FILE`,
        or a directory that contains ``cifar-10-batches-bin``.

    Returns:
      An :class:`~jebm.datasets.mnist.ImageSplit`: 50 000 training and 10 000 test images,
      ``(n, 32, 32, 3)`` uint8, with int32 labels.

    Raises:
      ValueError: for the Python (pickled) version, naming the binary archive to use; for a
        missing file; or as :func:`read_cifar10_batch`.
    """
    directory = Path(path)
    if (directory / "cifar-10-batches-bin").is_dir():
        directory = directory / "cifar-10-batches-bin"
    if not directory.is_dir():
        raise ValueError(f"CIFAR-10: {directory} is not a directory. {_USE_BINARY}")
    if (directory / "data_batch_1").is_file() or (directory / "cifar-10-batches-py").is_dir():
        _refuse_python_version(directory)
    names = (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE)
    missing = [f for f in names if not (directory / f).is_file()]
    if missing:
        raise ValueError(f"CIFAR-10: {directory} lacks {', '.join(missing)}. {_USE_BINARY}")
    train = [read_cifar10_batch(directory / f) for f in CIFAR10_TRAIN_FILES]
    test_images, test_labels = read_cifar10_batch(directory / CIFAR10_TEST_FILE)
    return ImageSplit(
        np.concatenate([images for images, _ in train]),
        np.concatenate([labels for _, labels in train]),
        test_images,
        test_labels,
    )
