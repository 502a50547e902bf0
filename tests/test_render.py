"""The scene picture: fills, hatching and outlines where the layer stack says, the target strip, the CLI."""

from __future__ import annotations

import io

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from amodaldata import render as R
from amodaldata.errors import AmodalDataError, AnnotationError, FormatError, ImageError
from amodaldata.masks import Mask
from amodaldata.order import OcclusionOrder
from amodaldata.scene import Region, Scene
from amodaldata.targets import GT_CONFIDENCE, global_layering_map
from cli import main
from converters.cocoa import read_cocoa

STYLE = R.RenderStyle()


def _two_squares() -> Scene:
    """Region 1 (front) over region 2 on a 40 x 60 canvas; region 2 is hidden where they overlap."""
    a = np.zeros((40, 60), bool)
    a[5:25, 5:30] = True
    b = np.zeros((40, 60), bool)
    b[12:35, 18:50] = True
    return Scene(id="squares", height=40, width=60, regions=[Region(1, Mask.from_bitmap(a), name="front"),
                                                            Region(2, Mask.from_bitmap(b), name="back")],
                 order=OcclusionOrder({(1, 2)}))


def _interior(mask: np.ndarray, margin: int) -> np.ndarray:
    """Pixels of ``mask`` farther than ``margin`` pixels (chessboard distance) from its border."""
    out = mask.copy()
    for _ in range(margin):
        p = np.pad(out, 1)
        out = out & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:] & p[:-2, :-2] & p[2:, 2:] \
            & p[:-2, 2:] & p[2:, :-2]
    return out


def test_fill_hatch_and_outline_follow_the_layer_stack():
    scene = _two_squares()
    stack = scene.layers
    colours = {1: np.array([255, 0, 0], np.uint8), 2: np.array([0, 0, 255], np.uint8)}
    photo = np.full((40, 60, 3), 100.0)
    picture = R.draw_regions(scene, photo, colours, STYLE)
    base = 100 * (1 - STYLE.image_dim) + 128 * STYLE.image_dim
    far = ~_interior(~(stack.amodal(1) | stack.amodal(2)), 1)        # any region and its dark rim
    near_outline = ~_interior(stack.amodal(1), STYLE.outline + 1) & stack.amodal(1) | \
        ~_interior(stack.amodal(2), STYLE.outline + 1) & stack.amodal(2)
    # background untouched (only dimmed)
    assert (picture[~far] == int(base)).all()
    # visible parts filled: blended with the region colour (away from the other region's hatching)
    for rid in (1, 2):
        inside = stack.visible(rid) & ~near_outline & (stack.count == 1)
        assert inside.any()
        expected = (base * (1 - STYLE.fill_alpha) + colours[rid] * STYLE.fill_alpha).astype(np.uint8)
        assert (picture[inside] == expected).all()
    # hidden part of region 2: its colour exactly on the stripes, region 1's fill elsewhere
    hidden = stack.invisible(2) & ~near_outline
    ys, xs = np.nonzero(hidden)
    phase = (1 * STYLE.hatch_width) % STYLE.hatch_period    # region 2 is second front to back
    on = (xs + ys - phase) % STYLE.hatch_period < STYLE.hatch_width
    assert on.any() and (~on).any()
    assert (picture[ys[on], xs[on]] == colours[2]).all()
    fill_1 = (base * (1 - STYLE.fill_alpha) + colours[1] * STYLE.fill_alpha).astype(np.uint8)
    assert (picture[ys[~on], xs[~on]] == fill_1).all()
    # outlines: the front region's border is drawn in its colour all round
    assert (picture[5, 5:30] == colours[1]).all() and (picture[5:25, 29] == colours[1]).all()
    # the back region's amodal outline runs through the hidden part too (under region 1)
    assert (picture[12, 30:49] == colours[2]).all() and (picture[13:22, 18] == colours[2]).all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_scenes_render(data, random_scenes):
    scene = data.draw(random_scenes)
    picture = R.render_scene(scene)
    assert picture.mode == "RGB" and picture.width == max(scene.width, 640)
    assert picture.height > scene.height


def test_region_colours_are_distinct():
    colours = R.region_colours(24)
    assert colours.shape == (24, 3) and colours.dtype == np.uint8
    assert len({tuple(c) for c in colours}) == 24


def test_strip_panels_show_the_targets(cocoa_json):
    scene = list(read_cocoa(cocoa_json))[2]                     # image 6608: 19 regions, depth 3
    colours = dict(zip([r.id for r in scene.regions], R.region_colours(len(scene.regions))))
    panels = R.strip_panels(scene, colours, max_level=4)
    stack = scene.layers
    assert len(panels) == 1 + stack.depth + 3
    assert panels[0].caption.startswith("global layering map")
    assert np.array_equal(panels[0].rgb, R.LEVEL_COLOURS[global_layering_map(stack, 4)])
    slice_1 = panels[1].rgb
    for rid, colour in colours.items():
        assert (slice_1[stack.visible(rid)] == colour).all()
    assert (slice_1[stack.count == 0] == R.PANEL_EMPTY).all()
    rates = sorted((stack.occlusion_rate(r.id) for r in scene.regions), reverse=True)
    semdist = panels[1 + stack.depth:]
    for panel, rate in zip(semdist, rates[:3]):
        assert f"({rate:.0%} hidden; zoom)" in panel.caption
        rid = int(panel.caption.split(" of ")[1].split()[0])
        visible_colour = R._colour_semdist(np.array(GT_CONFIDENCE))
        assert (panel.rgb[stack.visible(rid)] == visible_colour).all()
        x0, y0, x1, y1 = panel.box
        ys, xs = np.nonzero(stack.amodal(rid))
        assert x0 <= xs.min() and xs.max() < x1 and y0 <= ys.min() and ys.max() < y1


def test_render_uses_the_scene_image_a_given_image_or_grey(cocoa_images):
    (scene,) = read_cocoa(cocoa_images / "1.json", images=cocoa_images, load_images=True)
    with_photo = R.base_image(scene, None)
    assert np.array_equal(with_photo, np.asarray(Image.open(io.BytesIO(scene.image_bytes)).convert("RGB")))
    scene.image_bytes = None
    assert (R.base_image(scene, None) == 128).all()
    given = Image.new("RGB", (scene.width, scene.height), (10, 20, 30))
    assert (R.base_image(scene, given) == [10, 20, 30]).all()
    with pytest.raises(AnnotationError, match="image 188819.*the image is 5x5"):
        R.base_image(scene, Image.new("RGB", (5, 5)))
    scene.image_bytes = b"not an image"
    with pytest.raises(ImageError, match="image 188819, annotation 377: image 1.jpg does not decode"):
        R.render_scene(scene)


def test_select_scene_by_id_and_annotator(cocoa_json):
    scenes = list(read_cocoa(cocoa_json))
    assert R.select_scene(scenes, "6608").id == 6608
    with pytest.raises(AmodalDataError, match="no scene with image id 77; available: 188819, 343254, 6608"):
        R.select_scene(scenes, 77)
    twice = [scenes[0], Scene(scenes[0].id, 480, 640, annotator="bob", annotation_id=2)]
    assert R.select_scene(twice, 188819, "bob").annotation_id == 2
    assert R.select_scene(twice, 188819, "1").annotation_id == 2
    assert R.select_scene(twice, 188819).annotation_id == scenes[0].annotation_id
    with pytest.raises(AmodalDataError, match=r"no annotator 'eve'.*0 \(acherian\), 1 \(bob\)"):
        R.select_scene(twice, 188819, "eve")
    with pytest.raises(AmodalDataError, match="the input has no scene"):
        R.select_scene([], 1)


def test_save_image_is_atomic_and_needs_a_known_suffix(tmp_path):
    picture = Image.new("RGB", (4, 3), (1, 2, 3))
    out = R.save_image(picture, tmp_path / "sub" / "a.png")
    assert Image.open(out).size == (4, 3)
    assert R.save_image(picture, tmp_path / "b.JPG").exists()
    with pytest.raises(FormatError, match="suffix '.xyz'"):
        R.save_image(picture, tmp_path / "c.xyz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.JPG", "sub"]
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["a.png"]


def test_cli_show_cocoa(cocoa_json, cocoa_images, tmp_path):
    out = tmp_path / "scene.png"
    result = CliRunner().invoke(main, ["show", str(cocoa_json), "--images", str(cocoa_images),
                                       "--image-id", "343254", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    picture = Image.open(out)
    assert picture.width == 640 and picture.height > 427
    per_image = CliRunner().invoke(main, ["show", str(cocoa_images / "3.json"), "--images", str(cocoa_images),
                                          "--image-id", "6608", "--out", str(tmp_path / "3.png")])
    assert per_image.exit_code == 0, per_image.output


def test_cli_show_unknown_id_lists_available_ids(cocoa_json, tmp_path):
    result = CliRunner().invoke(main, ["show", str(cocoa_json), "--image-id", "12", "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 1
    assert result.output.strip() == "error: no scene with image id 12; available: 188819, 343254, 6608, 328805, 200752"
    assert not (tmp_path / "x.png").exists()


def test_cli_show_from_parquet_shards(cocoa_json, cocoa_images, tmp_path):
    from amodaldata.shards import write_shards

    write_shards(read_cocoa(cocoa_json, images=cocoa_images, load_images=True), tmp_path / "shards")
    out = tmp_path / "from_shards.png"
    result = CliRunner().invoke(main, ["show", str(tmp_path / "shards"), "--from", "parquet", "--image-id", "328805",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    (scene,) = [s for s in read_cocoa(cocoa_json, images=cocoa_images, load_images=True) if s.id == 328805]
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(R.render_scene(scene)))
