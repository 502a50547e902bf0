"""The overlay generator on the built-in real COCOA demo data: exact masks, order, pixels and visibility."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from amodaldata.data import COCOA_DEMO_DIR, COCOA_DEMO_JSON
from amodaldata.errors import AnnotationError
from generators.overlay import OverlayConfig, generate_scene, load_source


@pytest.fixture(scope="module")
def config() -> OverlayConfig:
    return OverlayConfig("cocoa", str(COCOA_DEMO_JSON), str(COCOA_DEMO_DIR), objects=(2, 3), image_format="png")


@pytest.fixture(scope="module")
def scenes(config):
    source = load_source(config)
    rng = np.random.default_rng(11)
    return source, [generate_scene(config, source, rng, i) for i in range(6)]


def _rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def test_source_objects_are_unoccluded_complete_things(config):
    source = load_source(config)
    assert len(source.scenes) == 5 and source.objects
    for obj in source.objects:
        scene = source.scenes[obj.scene]
        stack = scene.layers
        region = scene.region(obj.region)
        assert stack.occlusion_rate(obj.region) == 0 and not region.is_stuff
        assert obj.mask.sum() == stack.area(obj.region) >= config.min_area
        h, w = obj.mask.shape
        assert obj.x0 > 0 and obj.y0 > 0 and obj.x0 + w < scene.width and obj.y0 + h < scene.height


def test_pasted_objects_lie_on_top_with_exact_masks_and_pixels(config, scenes):
    source, generated = scenes
    n_pasted = 0
    for scene in generated:
        base = next(s for s in source.scenes if s.id == scene.extra["base"]["image_id"])
        pasted = [r for r in scene.regions if "pasted_from" in r.extra]
        n_pasted += len(pasted)
        assert [r.id for r in scene.regions[:len(base.regions)]] == [r.id for r in base.regions]
        assert len(scene.regions) == len(base.regions) + len(pasted)
        image, base_image = _rgb(scene.image_bytes), _rgb(base.image_bytes)
        covered = np.zeros((scene.height, scene.width), dtype=bool)
        for r in pasted:
            covered |= r.amodal.to_bitmap()
        assert np.array_equal(image[~covered], base_image[~covered])          # untouched elsewhere
        for k, r in enumerate(pasted):
            info = r.extra["pasted_from"]
            obj = next(o for o in source.objects if source.scenes[o.scene].id == info["image_id"]
                       and o.region == info["region_id"])
            assert obj.scene != source.scenes.index(base)                     # from another image
            assert r.name == source.scenes[obj.scene].region(obj.region).name
            # the amodal polygon is the source polygon scaled and moved
            src = np.asarray(obj.polygons[0]).reshape(-1, 2)
            got = np.asarray(r.amodal.polygons[0]).reshape(-1, 2)
            expected = (src - (obj.x0, obj.y0)) * info["scale"] + info["offset"]
            assert np.allclose(got, expected, atol=1e-3)
            assert r.depth_rank == len(pasted) - k
            # where the object is nearest, the picture shows the object's own pixels (nearest-neighbour map)
            mask = r.amodal.to_bitmap()
            shown = scene.layers.visible(r.id)
            ys, xs = np.nonzero(shown)
            sy = np.clip(((ys + 0.5 - info["offset"][1]) / info["scale"]).astype(int), 0, obj.mask.shape[0] - 1)
            sx = np.clip(((xs + 0.5 - info["offset"][0]) / info["scale"]).astype(int), 0, obj.mask.shape[1] - 1)
            assert np.array_equal(image[ys, xs], obj.pixels[sy, sx])
            # it is in front of every region below it that it overlaps, and nothing below is in front of it
            for other in scene.regions:
                below = other.id < r.id
                meets = bool((other.amodal.to_bitmap() & mask).any())
                if below and meets:
                    assert (r.id, other.id) in scene.order.edges
                if below:
                    assert (other.id, r.id) not in scene.order.edges
    assert n_pasted >= 6


def test_base_regions_keep_masks_and_order(scenes):
    source, generated = scenes
    for scene in generated:
        base = next(s for s in source.scenes if s.id == scene.extra["base"]["image_id"])
        for r, b in zip(scene.regions, base.regions):
            assert r.amodal is b.amodal and r.name == b.name and r.visible is None
        assert base.order.edges <= scene.order.edges
        scene.order.front_to_back([r.id for r in scene.regions])            # acyclic


def test_min_visible_is_respected(config, scenes):
    source, generated = scenes
    for scene in generated:
        base = next(s for s in source.scenes if s.id == scene.extra["base"]["image_id"])
        stack, before = scene.layers, base.layers
        for r in scene.regions:
            fraction = stack.visible_area(r.id) / stack.area(r.id)
            if r.id in before.pixels and stack.visible_area(r.id) < before.visible_area(r.id):
                assert fraction >= config.min_visible                     # occluded by a paste: still visible
    strict = OverlayConfig("cocoa", str(COCOA_DEMO_JSON), str(COCOA_DEMO_DIR), objects=(3, 3), min_visible=1.0)
    source = load_source(strict)
    scene = generate_scene(strict, source, np.random.default_rng(0), 0)
    stack = scene.layers
    base = next(s for s in source.scenes if s.id == scene.extra["base"]["image_id"])
    for r in base.regions:                                                  # no paste may hide anything
        assert stack.visible_area(r.id) == base.layers.visible_area(r.id)


def test_deterministic(config):
    source = load_source(config)
    a = generate_scene(config, source, np.random.default_rng(3), 0)
    b = generate_scene(config, source, np.random.default_rng(3), 0)
    assert a.image_bytes == b.image_bytes and a.order.edges == b.order.edges


def test_jpeg_by_default():
    config = OverlayConfig("cocoa", str(COCOA_DEMO_JSON), str(COCOA_DEMO_DIR))
    scene = generate_scene(config, load_source(config), np.random.default_rng(0), 4, split="val")
    assert scene.file_name == "val-00000004.jpg" and scene.image_bytes[:2] == b"\xff\xd8"


def test_no_eligible_object_is_an_error():
    config = OverlayConfig("cocoa", str(COCOA_DEMO_JSON), str(COCOA_DEMO_DIR), min_area=10**7)
    with pytest.raises(AnnotationError, match="no unoccluded"):
        load_source(config)


@pytest.mark.parametrize("kwargs", [{"objects": (0, 2)}, {"objects": (3, 1)}, {"scale": (0.0, 1.0)},
                                    {"min_visible": 1.5}, {"image_format": "gif"}, {"tries": 0}])
def test_bad_options_are_refused(kwargs):
    with pytest.raises(ValueError):
        OverlayConfig("cocoa", str(COCOA_DEMO_JSON), **kwargs)


def test_an_unknown_source_format_is_refused_before_anything_is_written(tmp_path):
    from click.testing import CliRunner

    from cli import main

    with pytest.raises(ValueError, match="unknown source format 'shards'.*parquet"):
        OverlayConfig("shards", str(COCOA_DEMO_JSON))
    result = CliRunner().invoke(main, ["gen", "overlay", "--source", "shards", str(COCOA_DEMO_JSON), "--n", "2",
                                       "--out", str(tmp_path / "ov"), "--no-progress"])
    assert result.exit_code == 2 and "unknown source format" in result.output
    assert not (tmp_path / "ov").exists()


@pytest.mark.parametrize(("fmt", "writer", "label_map"), [("kins", "kins", "car"), ("kins", "kins-2020", "car"),
                                                          ("d2sa", "d2sa", 1), ("cocoa-cls", "cocoa-cls", "cup"),
                                                          ("parquet", "parquet", None)])
def test_every_source_format_feeds_the_overlay(tmp_path, fmt, writer, label_map):
    """The COCOA demo written in another format (names mapped to one of its categories; shards embed the
    images) is a source like the original: the same objects are cut out and pasted."""
    from converters import read, write

    scenes = list(read(COCOA_DEMO_JSON, format="cocoa", images=COCOA_DEMO_DIR, load_images=fmt == "parquet"))
    out = tmp_path / ("shards" if fmt == "parquet" else f"{writer}.json")
    options = {} if label_map is None else {"label_map": {name: label_map for s in scenes for name in
                                                          {r.name for r in s.regions if r.name is not None}}}
    write(scenes, out, format=writer, **options)
    images = None if fmt == "parquet" else str(COCOA_DEMO_DIR)
    config = OverlayConfig(fmt, str(out), images, objects=(2, 2), min_area=100, image_format="png")
    original = OverlayConfig("cocoa", str(COCOA_DEMO_JSON), str(COCOA_DEMO_DIR), objects=(2, 2), min_area=100,
                             image_format="png")
    source, reference = load_source(config), load_source(original)
    assert len(source.objects) == len(reference.objects) > 0
    assert all(np.array_equal(a.mask, b.mask) and np.array_equal(a.pixels, b.pixels)
               for a, b in zip(source.objects, reference.objects))
    scene = generate_scene(config, source, np.random.default_rng(3), 0)
    want = generate_scene(original, reference, np.random.default_rng(3), 0)
    pasted = [r for r in scene.regions if "pasted_from" in r.extra]
    wanted = [r for r in want.regions if "pasted_from" in r.extra]
    assert len(pasted) == 2
    if writer == "cocoa-cls":   # the release holds RLE: the object is scaled as a bitmap, not as its polygons
        from amodaldata.masks import iou_matrix

        assert np.diag(iou_matrix([r.amodal for r in pasted], [r.amodal for r in wanted])).min() > 0.9
    else:
        assert [r.amodal.to_rle()["counts"] for r in pasted] == [r.amodal.to_rle()["counts"] for r in wanted]
