"""The generators' PNG writer against PIL's decoder."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from generators.encode import encode_png


def test_png_round_trip_through_pil():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 2, (37, 29)).astype(bool), rng.integers(0, 256, (13, 17), dtype=np.uint8),
              rng.integers(0, 256, (13, 17, 3), dtype=np.uint8), np.ones((5, 8), dtype=bool)]
    for image in images:
        data = encode_png(image, 6)
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            assert im.format == "PNG"
            assert np.array_equal(np.asarray(im), image)
        assert encode_png(image, 6) == data                # deterministic


def test_png_refuses_other_arrays():
    with pytest.raises(ValueError, match="encode_png"):
        encode_png(np.zeros((4, 4), dtype=np.float32))
