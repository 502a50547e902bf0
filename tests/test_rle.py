"""The one RLE codec against pycocotools, count for count and character for character: random masks, empty,
full and odd sizes, long runs with large negative deltas, and corrupt strings."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycocotools import mask as cocomask

from amodaldata import rle

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _coco(bitmap: np.ndarray) -> str:
    return cocomask.encode(np.asfortranarray(bitmap, dtype=np.uint8))["counts"].decode("ascii")


def _counts(bitmap: np.ndarray) -> list[int]:
    """Column-major run lengths, zeros first, as pycocotools counts them (no trailing empty run)."""
    flat = bitmap.ravel(order="F")
    bounds = np.concatenate(([0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]))
    runs = np.diff(bounds).tolist()
    return ([0] + runs) if flat.size and flat[0] else runs


@PROPERTY
@given(seed=st.integers(0, 2**32 - 1), height=st.integers(1, 41), width=st.integers(1, 41))
def test_encode_and_decode_equal_pycocotools(random_bitmaps, seed, height, width):
    for bitmap in random_bitmaps(seed, 4, height, width):
        coded = rle.encode(bitmap)
        assert coded == {"size": [height, width], "counts": _coco(bitmap)}
        reference = cocomask.decode({"size": [height, width], "counts": coded["counts"].encode()}).astype(bool)
        assert np.array_equal(rle.decode(coded), reference)
        assert rle.run_lengths(coded["counts"]).tolist() == _counts(bitmap)


@pytest.mark.parametrize("height, width", [(1, 1), (1, 7), (7, 1), (3, 5), (255, 257), (300, 300)])
@pytest.mark.parametrize("fill", [False, True])
def test_empty_and_full_masks(height, width, fill):
    bitmap = np.full((height, width), fill)
    assert rle.encode(bitmap)["counts"] == _coco(bitmap)
    assert np.array_equal(rle.decode(rle.encode(bitmap)), bitmap)


def test_strided_and_integer_bitmaps_encode_as_their_values():
    rng = np.random.default_rng(5)
    image = rng.integers(0, 3, (40, 60)).astype(np.uint8)
    for bitmap in (image, image[::3, 1::2], image.T, np.asfortranarray(image)):
        assert rle.encode(bitmap)["counts"] == _coco(bitmap > 0)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_strings_equal_pycocotools(data):
    h, w = data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12))
    masks = [np.array(data.draw(st.lists(st.booleans(), min_size=h * w, max_size=h * w))).reshape(h, w)
             for _ in range(data.draw(st.integers(1, 4)))]
    counts = [_counts(m) for m in masks]
    offsets = np.cumsum([0] + [len(c) for c in counts])
    got = rle.strings(np.array(sum(counts, []), dtype=np.int64), offsets)
    assert got == [_coco(m) for m in masks]


def test_strings_long_runs():
    mask = np.zeros((300, 300), dtype=bool)
    mask[10:290, 5:295] = True
    mask[0, :] = True                             # runs of one pixel between long ones: large negative deltas
    counts = _counts(mask)
    assert rle.strings(np.array(counts), np.array([0, len(counts)])) == [_coco(mask)]


def test_run_lengths_decode_large_and_negative_deltas():
    # long runs need several 5-bit groups and the delta coding goes negative: 1000 zeros, 5000 ones, 3 zeros, ...
    bitmap = np.zeros(100 * 100, dtype=np.uint8)
    bitmap[1000:6000] = 1
    bitmap[6003:6010] = 1
    counts = _coco(bitmap.reshape(100, 100, order="F"))
    assert rle.run_lengths(counts).tolist() == [1000, 5000, 3, 7, 10000 - 6010]
    assert rle.run_lengths("").size == 0
    with pytest.raises(ValueError):
        rle.run_lengths("abc")


@PROPERTY
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 6), height=st.integers(1, 23), width=st.integers(1, 23))
def test_runs_and_decode_many_match_pycocotools(random_bitmaps, seed, n, height, width):
    bitmaps = random_bitmaps(seed, n, height, width)
    texts = [_coco(b).encode() for b in bitmaps]
    starts, ends, offsets, bad = rle.runs(texts, height * width)
    assert bad == -1 and offsets.size == n + 1
    owner, bounds, position = rle.decode_many(texts)
    for i, bitmap in enumerate(bitmaps):
        flat = np.zeros(height * width, dtype=bool)
        for s, e in zip(starts[offsets[i]:offsets[i + 1]], ends[offsets[i]:offsets[i + 1]]):
            assert s < e
            flat[s:e] = True
        assert np.array_equal(flat, bitmap.T.ravel())
        assert np.diff(np.concatenate(([0], bounds[owner == i]))).tolist() == _counts(bitmap)
        assert position[owner == i].tolist() == list(range(len(_counts(bitmap))))


@PROPERTY
@given(seed=st.integers(0, 2**32 - 1), height=st.integers(1, 30), width=st.integers(1, 30))
def test_from_runs_equals_pycocotools(random_bitmaps, seed, height, width):
    for bitmap in random_bitmaps(seed, 3, height, width):
        flat = bitmap.ravel(order="F")
        edges = np.flatnonzero(np.diff(np.concatenate(([0], flat.astype(np.int8), [0]))))
        assert rle.from_runs(edges[0::2], edges[1::2], height, width) == \
            {"size": [height, width], "counts": _coco(bitmap)}


@pytest.mark.parametrize("broken", [b"", b"0", b"0`", b"0:0", b"0\x7f", b"1c>", b"0o1", b"0<05"])
def test_decode_runs_names_the_first_invalid_string(broken):
    """Characters outside '0'..'o', a number cut off, negative runs and counts not adding up to the image are
    reported by string index, never decoded past the image (3 x 4 pixels here; "<4" is a valid 12)."""
    good = _coco(np.eye(3, 4)).encode()
    assert rle.runs([good, broken, good], 12)[3] == 1
    assert rle.runs([good], 12)[3] == -1
    with pytest.raises(ValueError):
        rle.decode({"size": [3, 4], "counts": broken})


def test_intervals_split_at_the_column_ends_cover_the_same_pixels():
    h, w = 5, 4
    start, end = np.array([3, 7, 7, 0]), np.array([12, 7, 9, 2])        # over three columns, empty, in one
    which, col, top, bottom = rle.split_at_columns(start, end, h)
    assert which.tolist() == [0, 0, 0, 2, 3] and col.tolist() == [0, 1, 2, 1, 0]
    assert top.tolist() == [3, 0, 0, 2, 0] and bottom.tolist() == [5, 5, 2, 4, 2]
    for i, (a, b) in enumerate(zip(start, end)):
        flat = np.zeros(h * w, bool)
        flat[a:b] = True
        pieces = np.zeros((h, w), bool)
        for c, y0, y1 in zip(col[which == i], top[which == i], bottom[which == i]):
            pieces[y0:y1, c] = True
        assert np.array_equal(pieces, flat.reshape(w, h).T)
