"""MNIST and Fashion-MNIST from their idx-ubyte files, gzipped or not, from a given path.

jebm never downloads: point :func:`load_mnist` at a directory holding the four files of
either data set, under their distributed names (Fashion-MNIST uses the same names)::

    train-images-idx3-ubyte[.gz]  train-labels-idx1-ubyte[.gz]
    t10k-images-idx3-ubyte[.gz]   t10k-labels-idx1-ubyte[.gz]

The idx format (LeCun et al.) is a big-endian header — two zero bytes, a type code
(``0x08``: unsigned byte), the number of dimensions ``k`` — then ``k`` big-endian uint32
sizes, then the data in C order. A file starting with the gzip magic ``1f 8b`` is
decompressed first, whatever its name. Every check (magic, type, dimensions, length,
image/label counts, label range) raises a ``ValueError`` naming the file.

References:
  LeCun, Y., Bottou, L., Bengio, Y. and Haffner, P. (1998). Gradient-based learning applied
  to document recognition. Proc. IEEE 86(11). (MNIST; the idx format at
  yann.lecun.com/exdb/mnist)

  Xiao, H., Rasul, K. and Vollgraf, R. (2017). Fashion-MNIST: a novel image dataset for
  benchmarking machine learning algorithms. arXiv:1708.07747.
"""

import gzip
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jebm.datasets.labels import NUM_CLASSES

__all__ = ["ImageSplit", "read_idx", "load_mnist", "load_fashion_mnist", "MNIST_FILES"]

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_GZIP_MAGIC = b"\x1f\x8b"
_UBYTE = 0x08


class ImageSplit(NamedTuple):
    """Images and labels of a train/test split, as stored (no scaling).

    Attributes:
      train_images: ``(n, H, W)`` (or ``(n, H, W, C)``) uint8.
      train_labels: ``(n,)`` int32.
      test_images: ``(m, ...)`` uint8.
      test_labels: ``(m,)`` int32.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ValueError(f"cannot read {path}: {err}") from err
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise ValueError(f"{path} is a damaged or truncated gzip file: {err}") from err
    return raw


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one idx-ubyte file (optionally gzipped) into a uint8 array of its stored shape.

    Args:
      path: the file.

    Returns:
      The array, shape from the header (e.g. ``(60000, 28, 28)`` or ``(60000,)``).

    Raises:
      ValueError: naming ``path``, for a missing file, a bad magic number, a type other
        than unsigned byte, or a data length that does not match the header (truncated or
        padded files).
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"{path} is not an idx file (its first bytes {raw[:4].hex()} are not the idx magic "
            "00 00 08 <ndim>)."
        )
    if raw[2] != _UBYTE:
        raise ValueError(f"{path}: idx type code 0x{raw[2]:02x}; only unsigned byte (0x08).")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise ValueError(f"{path}: truncated idx header ({len(raw)} bytes, {ndim} dimensions).")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: header says shape {shape} ({expected} bytes of data) but the file holds "
            f"{len(raw) - header}; the file is truncated or not what its header says."
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def _find(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise ValueError(f"{directory} has no {stem} or {stem}.gz (the idx-ubyte files are needed).")


def load_mnist(path: str | os.PathLike, *, name: str = "MNIST") -> ImageSplit:
    """Load MNIST (or Fashion-MNIST, same file names) from a directory of idx files.

    Args:
      path: directory holding the four files of :data:`MNIST_FILES`, each optionally ``.gz``.
      name: the data set's name, for error messages.

    Returns:
      An :class:`ImageSplit` of uint8 ``(n, 28, 28)`` images and int32 labels.

    Raises:
      ValueError: naming the file, for a missing, malformed or truncated file, images
        that are not ``(n, H, W)``, label files that are not ``(n,)``, image and label
        counts that differ, or labels outside 0–9.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise ValueError(f"{name}: {directory} is not a directory of idx-ubyte files.")
    arrays = {}
    for part in ("train", "test"):
        img_path = _find(directory, MNIST_FILES[f"{part}_images"])
        lbl_path = _find(directory, MNIST_FILES[f"{part}_labels"])
        images, labels = read_idx(img_path), read_idx(lbl_path)
        if images.ndim != 3:
            raise ValueError(f"{img_path}: {name} images must be (n, H, W), got {images.shape}.")
        if labels.ndim != 1:
            raise ValueError(f"{lbl_path}: {name} labels must be (n,), got {labels.shape}.")
        if len(images) != len(labels):
            raise ValueError(
                f"{name}: {img_path.name} holds {len(images)} images but {lbl_path.name} "
                f"{len(labels)} labels."
            )
        if labels.size and labels.max() >= NUM_CLASSES:
            raise ValueError(f"{lbl_path}: label {labels.max()} is outside 0..9.")
        arrays[part] = (images, labels.astype(np.int32))
    return ImageSplit(*arrays["train"], *arrays["test"])


def load_fashion_mnist(path: str | os.PathLike) -> ImageSplit:
    """Load Fashion-MNIST: :func:`load_mnist` on its directory (the file names are MNIST's).

    Args:
      path: directory holding the four files of :data:`MNIST_FILES`, each optionally ``.gz``.

    Returns:
      An :class:`ImageSplit` of uint8 ``(n, 28, 28)`` images and int32 labels.

    Raises:
      ValueError: naming the file, for a missing or malformed file (see :func:`load_mnist`).
    """
    return load_mnist(path, name="Fashion-MNIST")
