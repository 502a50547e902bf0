"""The shapes generator: the paper's setting (Liu et al. 2019, Sec. 3), exact ground truth, picture/mask agreement."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from amodaldata.layers import LayerStack
from amodaldata.masks import Mask
from generators.shapes import CLASSES, PAPER, ShapesConfig, generate_scene


def outline(mask: np.ndarray, width: int) -> np.ndarray:
    """Reference outline band: the mask minus its erosion by an octagon of radius ``width`` (alternating 4- and
    8-neighbour steps), pixels beyond the image frame counting as inside (no outline along the frame)."""
    if width <= 0:
        return np.zeros_like(mask)
    a = np.pad(mask, width, constant_values=True)
    for step in range(width):
        if step % 2 == 0:
            a = a[1:-1, 1:-1] & a[:-2, 1:-1] & a[2:, 1:-1] & a[1:-1, :-2] & a[1:-1, 2:]
        else:
            b = a[:, :-2] & a[:, 1:-1] & a[:, 2:]
            a = b[:-2] & b[1:-1] & b[2:]
    return mask & ~a


def _scene(config: ShapesConfig = PAPER, seed: int = 0, index: int = 0):
    return generate_scene(config, np.random.default_rng(seed), index)


def _image(scene) -> np.ndarray:
    with Image.open(io.BytesIO(scene.image_bytes)) as im:
        im.load()
        return np.asarray(im)


def _vertices(region) -> np.ndarray:
    return np.asarray(region.amodal.polygons[0]).reshape(-1, 2)


# -- the paper's setting -----------------------------------------------------------------------------------
def test_paper_default_scene():
    scene = _scene()
    assert (scene.height, scene.width) == (256, 256)
    assert scene.file_name == "train-00000000.png"
    names = [r.name for r in scene.regions]
    assert set(names) <= {"circle", "triangle", "rectangle"}
    assert 12 <= len(names) <= 18                       # 6 per class, minus the fully hidden ones
    image = _image(scene)
    assert image.shape == (256, 256) and image.dtype == np.uint8    # 8-bit gray: white shapes, black outlines
    assert set(np.unique(image).tolist()) == {0, 255} and image.mean() > 0.5 * 255
    for r in scene.regions:
        assert r.category_id == CLASSES.index(r.name) + 1
        assert r.amodal.encoding == "polygon"
        ax, ay = r.extra["anchor"]
        assert 0.1 * 256 <= ax <= 0.9 * 256 and 0.1 * 256 <= ay <= 0.9 * 256


def test_paper_shape_sizes_and_anchors():
    """Circle diameter 0.25, equilateral triangle side 0.3, rectangle a 0.1 x 0.8 bar (of the side); each shape
    anchored at the top-left corner of its unrotated box, rotated about it (the public generator's placement);
    circles unrotated; polygons on the 1/256 px grid."""
    seen = set()
    for seed in range(3):
        for r in _scene(seed=seed).regions:
            v = _vertices(r)
            anchor = np.array(r.extra["anchor"])
            assert np.all(v * 256 == np.round(v * 256))
            sides = np.linalg.norm(v - np.roll(v, -1, axis=0), axis=1)
            if r.name == "circle":      # its box's corner is the anchor: the centre lies 32 px right and down
                radii = np.linalg.norm(v - (anchor + 32), axis=1)
                assert np.allclose(radii, 32, atol=0.01)
                assert r.extra["angle"] == 0
                assert 32 * (1 - math.cos(math.pi / len(v))) <= 0.1   # chord within 0.1 px of the circle
            elif r.name == "triangle":  # a corner at the anchor
                assert np.allclose(sides, 0.3 * 256, atol=0.01)
                assert np.linalg.norm(v - anchor, axis=1).min() < 0.01
            else:                       # a corner at the anchor, the long sides leaving it at the given angle
                assert np.allclose(sorted(sides), [25.6, 25.6, 204.8, 204.8], atol=0.01)
                corner = np.argmin(np.linalg.norm(v - anchor, axis=1))
                assert np.linalg.norm(v[corner] - anchor) < 0.01
                theta = math.radians(r.extra["angle"])
                long_side = np.array([-math.sin(theta), math.cos(theta)]) * 204.8    # +y, rotated
                assert min(np.linalg.norm(v - (anchor + long_side), axis=1)) < 0.02
            assert 0 <= r.extra["angle"] < 360
            seen.add(r.name)
    assert seen == {"circle", "triangle", "rectangle"}


def test_outline_is_two_pixels_black_and_nearest_wins():
    scene = _scene()
    image = _image(scene) == 255
    stack = scene.layers
    union = stack.count > 0
    assert image[~union].all()                           # background white
    assert not image[union].all()                        # outlines drawn
    # every black pixel is the outline band of the region nearest there, and the band is 2 px wide
    nearest = stack.ids[0]
    for r in scene.regions:
        amodal = r.amodal.to_bitmap()
        band = outline(amodal, 2)
        shown = nearest == r.id
        assert np.array_equal(~image[shown], band[shown])
    assert PAPER.outline_px == 2


def test_targets_at_mask_size():
    scene = _scene()
    for r in scene.regions:
        small = r.extra["amodal_small"]
        assert small["size"] == [64, 64]
        expected = Mask.from_polygons((_vertices(r) / 4).ravel().tolist(), 64, 64)
        assert Mask.from_rle(small, 64, 64) == expected
    assert "amodal_small" not in _scene(ShapesConfig(mask_size=0)).regions[0].extra


# -- exact ground truth ------------------------------------------------------------------------------------
def _check_exact(scene, config: ShapesConfig) -> None:
    """The stack handed to the scene is LayerStack.from_scene's; visible masks are its slice 0; the order is
    every overlapping pair, later (higher id) in front; ranks count from the nearest."""
    given = scene.layers
    ref = LayerStack.from_scene(scene)
    assert np.array_equal(given.ids, ref.ids) and np.array_equal(given.count, ref.count)
    assert given.front_to_back == ref.front_to_back
    for rid in ref.pixels:
        order = np.argsort(ref.pixels[rid])
        assert np.array_equal(np.sort(given.pixels[rid]), ref.pixels[rid][order])
        assert np.array_equal(given.levels[rid][np.argsort(given.pixels[rid])], ref.levels[rid][order])
    bitmaps = {r.id: r.amodal.to_bitmap() for r in scene.regions}
    overlapping = {(b, a) for a in bitmaps for b in bitmaps if a < b and (bitmaps[a] & bitmaps[b]).any()}
    assert scene.order.edges == overlapping
    m = len(scene.regions)
    assert [r.id for r in scene.regions] == list(range(1, m + 1))
    assert [r.depth_rank for r in scene.regions] == list(range(m, 0, -1))
    for r in scene.regions:
        assert r.amodal.to_rle() == Mask(scene.height, scene.width, polygons=r.amodal.polygons).to_rle()
        assert r.visible == Mask.from_bitmap(ref.visible(r.id))
        if not config.keep_hidden:
            assert ref.visible_area(r.id) > 0


def _check_picture(scene, config: ShapesConfig) -> None:
    """Background pixels are white; where a region is nearest the pixel shows its fill, or black on its outline
    band; so the picture agrees with the masks everywhere."""
    image = _image(scene)
    stack = scene.layers
    nearest = stack.ids[0] if stack.depth else np.zeros((scene.height, scene.width), dtype=np.int32)
    white = image if image.dtype == bool else (image == 255).all(axis=-1) if image.ndim == 3 else image == 255
    assert white[nearest == 0].all()
    for r in scene.regions:
        shown = nearest == r.id
        band = outline(r.amodal.to_bitmap(), config.outline_px)
        if image.dtype == bool:
            assert np.array_equal(image[shown], ~band[shown])
        else:
            fill = np.array(r.extra.get("fill", [255]), dtype=np.uint8)
            pixels = image[shown].reshape(-1, fill.size)
            expected = np.where(band[shown][:, None], 0, fill[None, :])
            assert np.array_equal(pixels, expected)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(16, 72), jitter=st.sampled_from([0.0, 0.3]),
       fill=st.sampled_from(["same", "gray", "random"]), keep=st.booleans(),
       classes=st.lists(st.sampled_from(CLASSES), min_size=1, max_size=6, unique=True),
       per_class=st.tuples(st.integers(0, 3), st.integers(0, 4)), outline_rel=st.sampled_from([0.0, 0.02, 0.05]))
def test_ground_truth_is_exact(seed, size, jitter, fill, keep, classes, per_class, outline_rel):
    low, high = sorted(per_class)
    config = ShapesConfig(size=size, classes=tuple(classes), per_class=(low, high), size_jitter=jitter, fill=fill,
                          keep_hidden=keep, outline=outline_rel, mask_size=16)
    scene = generate_scene(config, np.random.default_rng(seed), 5)
    _check_exact(scene, config)
    _check_picture(scene, config)


def test_paper_default_exact():
    for seed in range(3):
        scene = _scene(seed=seed)
        _check_exact(scene, PAPER)
        _check_picture(scene, PAPER)


def test_keep_hidden_keeps_fully_covered_shapes():
    config = ShapesConfig(size=64, per_class=(12, 12))       # crowded: some shapes end up fully covered
    dropped = _scene(config, seed=3)
    kept = _scene(ShapesConfig(size=64, per_class=(12, 12), keep_hidden=True), seed=3)
    assert len(kept.regions) == 36 > len(dropped.regions)
    hidden = [r.id for r in kept.regions if kept.layers.visible_area(r.id) == 0]
    assert len(hidden) == 36 - len(dropped.regions)
    assert _image(kept).tobytes() == _image(dropped).tobytes()   # the same picture
    _check_exact(kept, ShapesConfig(keep_hidden=True))


def test_three_objects_stacked_are_representable():
    """The paper's failure case (Fig. 4, a triple stack) shows up in the layer stack (K >= 3)."""
    depths = [_scene(seed=s).layers.depth for s in range(3)]
    assert max(depths) >= 3


def test_same_seed_same_scene_bytes():
    a, b = _scene(seed=5, index=9), _scene(seed=5, index=9)
    assert a.image_bytes == b.image_bytes
    assert [r.amodal.polygons for r in a.regions] == [r.amodal.polygons for r in b.regions]
    assert _scene(seed=6).image_bytes != a.image_bytes


def test_per_class_range_and_extra_classes():
    config = ShapesConfig(size=128, classes=("ellipse", "square", "star"), per_class=(0, 3), keep_hidden=True)
    counts = []
    for seed in range(8):
        scene = _scene(config, seed=seed)
        names = [r.name for r in scene.regions]
        counts += [names.count(c) for c in config.classes]
        assert set(names) <= {"ellipse", "square", "star"}
    assert min(counts) == 0 and max(counts) == 3
    star = next(r for s in range(8) for r in _scene(config, seed=s).regions if r.name == "star")
    assert len(star.amodal.polygons[0]) == 20              # ten vertices


def test_random_fill_is_rgb_and_gray_fill_is_gray():
    assert _image(_scene(ShapesConfig(size=64, fill="random"))).shape == (64, 64, 3)
    assert _image(_scene(ShapesConfig(size=64, fill="gray"))).dtype == np.uint8


def test_image_modes_hold_the_same_picture():
    gray = _image(_scene(ShapesConfig(size=64)))
    one_bit = _image(_scene(ShapesConfig(size=64, image_mode="1")))
    rgb = _image(_scene(ShapesConfig(size=64, image_mode="RGB")))
    assert gray.dtype == np.uint8 and gray.ndim == 2
    assert one_bit.dtype == bool and np.array_equal(one_bit, gray == 255)
    assert rgb.shape == (64, 64, 3) and all(np.array_equal(rgb[..., c], gray) for c in range(3))
    grey_fill = _image(_scene(ShapesConfig(size=64, fill="gray", image_mode="RGB")))
    assert np.array_equal(grey_fill[..., 0], _image(_scene(ShapesConfig(size=64, fill="gray"))))


@pytest.mark.parametrize("kwargs", [{"classes": ("blob",)}, {"classes": ()}, {"per_class": (3, 2)},
                                    {"size_jitter": 1.0}, {"fill": "pink"}, {"outline": 0.6},
                                    {"size": 4}, {"mask_size": -1}, {"classes": ("circle", "circle")},
                                    {"size": 8, "classes": ("ellipse",), "size_jitter": 0.6},
                                    {"image_mode": "P"}, {"image_mode": "1", "fill": "gray"},
                                    {"image_mode": "L", "fill": "random"}])
def test_bad_options_are_refused(kwargs):
    with pytest.raises(ValueError):
        ShapesConfig(**kwargs)
