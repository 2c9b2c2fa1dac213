"""Figures: image grids are written as PNG files."""

import numpy as np
import pytest

from jebm import plotting


def test_save_image_grid(tmp_path):
    images = np.random.default_rng(0).uniform(size=(7, 8, 8))
    path = tmp_path / "grid.png"
    plotting.save_image_grid(path, images, 4, title="samples")
    assert path.stat().st_size > 100
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    plotting.save_image_grid(tmp_path / "one.png", images[:1, :, :, None], 3)
    plotting.save_image_grid(tmp_path / "rgb.png", np.stack([images] * 3, axis=-1), 4)
    assert (tmp_path / "rgb.png").stat().st_size > 100  # colour (CIFAR-10)
    with pytest.raises(ValueError, match="images"):
        plotting.save_image_grid(path, images[0], 4)


