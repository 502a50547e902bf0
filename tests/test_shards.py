"""Parquet shards: round trip, determinism, atomicity, Hugging Face compatibility."""

from __future__ import annotations

import io

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest

from amodaldata.errors import FormatError
from amodaldata.masks import Mask
from amodaldata.order import OcclusionOrder
from amodaldata.scene import Region, Scene
from amodaldata.shards import SCHEMA, read_shards, shard_name, write_shard, write_shards
from converters.cocoa import read_cocoa


@pytest.fixture
def scenes(cocoa_json, cocoa_images):
    return list(read_cocoa(cocoa_json, cocoa_images, load_images=True))


def assert_same_scene(a: Scene, b: Scene) -> None:
    assert (a.id, a.height, a.width, a.file_name, a.annotator, a.annotation_id) == \
        (b.id, b.height, b.width, b.file_name, b.annotator, b.annotation_id)
    assert a.image_bytes == b.image_bytes
    assert a.extra == b.extra
    assert a.order.edges == b.order.edges
    assert len(a.regions) == len(b.regions)
    for ra, rb in zip(a.regions, b.regions):
        assert (ra.id, ra.name, ra.category_id, ra.is_stuff, ra.depth_rank, ra.extra) == \
            (rb.id, rb.name, rb.category_id, rb.is_stuff, rb.depth_rank, rb.extra)
        assert ra.amodal.encoding == rb.amodal.encoding
        assert ra.amodal.polygons == rb.amodal.polygons
        assert np.array_equal(ra.amodal.to_bitmap(), rb.amodal.to_bitmap())
        assert (ra.visible is None) == (rb.visible is None)
        if ra.visible is not None:
            assert np.array_equal(ra.visible.to_bitmap(), rb.visible.to_bitmap())
    assert np.array_equal(a.layers.ids, b.layers.ids)


def test_round_trip_loses_nothing(scenes, tmp_path):
    paths = write_shards(scenes, tmp_path, split="val", scenes_per_shard=2)
    assert [p.name for p in paths] == [shard_name("val", i, 3) for i in range(3)]
    back = list(read_shards(tmp_path))
    assert len(back) == len(scenes)
    for a, b in zip(scenes, back):
        assert_same_scene(a, b)


def test_round_trip_of_rle_bitmap_and_string_ids(tmp_path):
    rng = np.random.default_rng(0)
    bitmap = rng.random((20, 30)) > 0.5
    rle = Mask.from_bitmap(rng.random((20, 30)) > 0.7).to_rle()
    scene = Scene(id="img-a", height=20, width=30, annotation_id="x", regions=[
        Region(1, Mask.from_bitmap(bitmap), category_id=7, extra={"score": 0.5}),
        Region(2, Mask.from_rle(rle, 20, 30), name="wall", is_stuff=True),
    ], order=OcclusionOrder({(1, 2)}), extra={"source": "test"})
    write_shard([scene], tmp_path / "x.parquet")
    (back,) = read_shards(tmp_path / "x.parquet")
    assert back.id == "img-a" and back.annotation_id == "x"
    assert back.regions[0].amodal.encoding == "rle"     # bitmaps are stored as RLE
    assert_same_scene(scene, back)


def test_rows_hold_derived_visible_masks_and_rates(scenes, tmp_path):
    write_shards(scenes, tmp_path, scenes_per_shard=10)
    table = pq.read_table(next(tmp_path.glob("*.parquet")))
    rows = table.to_pylist()
    for scene, row in zip(scenes, rows):
        for region, stored in zip(scene.regions, row["regions"]):
            visible = Mask.from_rle(stored["visible"], scene.height, scene.width).to_bitmap()
            assert np.array_equal(visible, scene.layers.visible(region.id))
            assert stored["area"] == region.amodal.area()
            assert stored["occlusion_rate"] == pytest.approx(scene.layers.occlusion_rate(region.id), abs=1e-6)


def test_writing_is_deterministic(scenes, tmp_path):
    write_shards(scenes, tmp_path / "a", scenes_per_shard=3)
    write_shards(scenes, tmp_path / "b", scenes_per_shard=3)
    for pa_, pb in zip(sorted((tmp_path / "a").iterdir()), sorted((tmp_path / "b").iterdir())):
        assert pa_.name == pb.name
        assert pa_.read_bytes() == pb.read_bytes()


def test_failed_write_leaves_nothing(scenes, tmp_path):
    def broken():
        yield from scenes[:3]
        raise RuntimeError("reader died")

    with pytest.raises(RuntimeError):
        write_shards(broken(), tmp_path / "out", scenes_per_shard=2, card=False)
    assert list((tmp_path / "out").iterdir()) == []


def test_schema_declares_the_hf_image_feature():
    assert b"huggingface" in SCHEMA.metadata
    assert str(SCHEMA.field("image").type) == "struct<bytes: binary, path: string>"


def test_hugging_face_datasets_decodes_images_and_regions(scenes, tmp_path):
    write_shards(scenes, tmp_path, split="train", scenes_per_shard=2)
    ds = datasets.load_dataset("parquet", data_dir=str(tmp_path), split="train",
                               cache_dir=str(tmp_path / ".cache"))
    assert len(ds) == len(scenes)
    assert isinstance(ds.features["image"], datasets.Image)
    from PIL import Image

    for scene, row in zip(scenes, ds):
        assert row["image"].size == (scene.width, scene.height)
        reference = Image.open(io.BytesIO(scene.image_bytes))
        assert np.array_equal(np.asarray(row["image"]), np.asarray(reference))
        assert [r["id"] for r in row["regions"]] == [r.id for r in scene.regions]
        for region, stored in zip(scene.regions, row["regions"]):
            amodal = Mask.from_rle(stored["amodal"], scene.height, scene.width)
            assert amodal == region.amodal


def test_reading_bad_shards_names_the_file(tmp_path):
    with pytest.raises(FormatError, match="no shards"):
        list(read_shards(tmp_path))
    bad = tmp_path / "x.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(FormatError, match="x.parquet"):
        list(read_shards(bad))
