"""Parquet shards: round trip, determinism, atomicity, Hugging Face compatibility, partitioning."""

from __future__ import annotations

import io
import weakref

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest

from amodaldata.errors import FormatError
from amodaldata.masks import Mask
from amodaldata.order import OcclusionOrder
from amodaldata.scene import Region, Scene
from amodaldata.shards import (SCHEMA, SPLIT_KEYWORDS, ShardSet, canonical_split, dataset_features_yaml,
                               read_shards, shard_name, write_dataset_card, write_shard, write_shards)
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
    assert [p.name for p in paths] == [shard_name("validation", i, 3) for i in range(3)]   # the HF split name
    assert list(read_shards(tmp_path, split="val")) and list(read_shards(tmp_path, split="validation"))
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


def _square_scene(i: int) -> Scene:
    """A 32x32 scene of two overlapping squares, its layer stack built (as convert's reader stage does)."""
    a, b = np.zeros((32, 32), bool), np.zeros((32, 32), bool)
    a[2:20, 2:20], b[10:30, 10:30] = True, True
    scene = Scene(id=i, height=32, width=32, regions=[Region(1, Mask.from_bitmap(a)), Region(2, Mask.from_bitmap(b))],
                  order=OcclusionOrder({(1, 2)}))
    scene.layers
    return scene


def test_writing_streams_one_row_group_at_a_time(tmp_path, monkeypatch):
    live: weakref.WeakSet[Scene] = weakref.WeakSet()
    most_alive, pulled, pulled_at_writes = 0, 0, []

    def source(n: int):
        nonlocal most_alive, pulled
        for i in range(n):
            scene = _square_scene(i)
            live.add(scene)
            pulled += 1
            most_alive = max(most_alive, len(live))
            yield scene
            del scene

    write_table = pq.ParquetWriter.write_table

    def recording(self, table, *args, **kwargs):
        pulled_at_writes.append((pulled, table.num_rows))
        return write_table(self, table, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", recording)
    paths = write_shards(source(250), tmp_path, scenes_per_shard=1000, card=False)
    assert pulled_at_writes == [(100, 100), (200, 100), (250, 50)]   # each group written once its scenes are read
    assert most_alive <= 2          # a group holds rows, not Scenes: the one being made and the one before
    assert pq.ParquetFile(paths[0]).metadata.num_row_groups == 3
    assert [s.id for s in read_shards(tmp_path)] == list(range(250))


def test_streamed_shards_split_at_exact_multiples_and_match_a_list(tmp_path):
    paths = write_shards((_square_scene(i) for i in range(4)), tmp_path / "a", scenes_per_shard=2, card=False)
    assert [p.name for p in paths] == [shard_name("train", i, 2) for i in range(2)]   # no empty third shard
    write_shard([_square_scene(i) for i in range(2)], tmp_path / "b.parquet")
    assert paths[0].read_bytes() == (tmp_path / "b.parquet").read_bytes()
    (empty,) = write_shards(iter(()), tmp_path / "c", card=False)
    assert empty.name == shard_name("train", 0, 1) and pq.ParquetFile(empty).metadata.num_rows == 0


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


def test_split_keywords_are_those_of_hugging_face():
    from datasets.data_files import SPLIT_KEYWORDS as HF

    assert {str(k): list(v) for k, v in HF.items()} == {k: list(v) for k, v in SPLIT_KEYWORDS.items()}
    assert [canonical_split(s) for s in ("val", "Dev", "training", "eval", "extra")] == \
        ["validation", "validation", "train", "test", "extra"]


def _load(tmp_path, how: str) -> "datasets.DatasetDict":
    cache = str(tmp_path / f".cache-{how}")
    if how == "data_dir":
        return datasets.load_dataset("parquet", data_dir=str(tmp_path), cache_dir=cache)
    return datasets.load_dataset(str(tmp_path), cache_dir=cache)       # the dataset card's configs


@pytest.mark.parametrize("how", ["data_dir", "card"])
def test_every_loading_path_names_the_splits_as_hugging_face(scenes, tmp_path, how):
    write_shards(scenes[:2], tmp_path, split="train")
    write_shards(scenes[2:], tmp_path, split="val")
    ds = _load(tmp_path, how)
    assert sorted(ds) == ["train", "validation"] and len(ds["validation"]) == len(scenes) - 2


def test_card_of_old_val_shards_names_the_split_validation(scenes, tmp_path):
    write_shards(scenes, tmp_path, split="validation", card=False)
    for path in tmp_path.glob("validation-*.parquet"):          # shards written before split names were canonical
        path.rename(path.with_name(path.name.replace("validation", "val")))
    write_dataset_card(tmp_path)
    assert list(_load(tmp_path, "card")) == ["validation"]


def test_card_declares_the_features_of_the_schema():
    import yaml

    declared = yaml.safe_load("\n".join(dataset_features_yaml()))["dataset_info"]["features"]
    assert datasets.Features._from_yaml_list(declared) == datasets.Features.from_arrow_schema(SCHEMA)


def test_the_card_snippets_run_on_its_shards(scenes, tmp_path):
    """Every Python block of the card, run in order on the folder it describes: the mask and order lines work."""
    import re

    write_shards(scenes, tmp_path / "shards", split="val", scenes_per_shard=2)
    card = (tmp_path / "shards" / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", card, flags=re.S)
    assert len(blocks) == 4
    env: dict = {}
    code = "\n".join(blocks).replace("THIS_FOLDER", str(tmp_path / "shards"))
    code = code.replace('data_dir=', f'cache_dir={str(tmp_path / ".cache")!r}, data_dir=')
    exec(compile(code, "README.md", "exec"), env)
    first = scenes[0]
    assert np.array_equal(env["amodal"], first.regions[0].amodal.to_bitmap().astype(np.uint8))
    assert env["visible"].dtype == np.uint8 and env["visible"].shape == (first.height, first.width)
    position = {rid: i for i, rid in enumerate(env["front_to_back"])}
    assert all(position[a] < position[b] for a, b in first.order.edges)
    assert env["stack"].shape == (first.height, first.width)


def test_reading_bad_shards_names_the_file(tmp_path):
    with pytest.raises(FormatError, match="no shards"):
        list(read_shards(tmp_path))
    bad = tmp_path / "x.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(FormatError, match="x.parquet"):
        list(read_shards(bad))


def tiny_shards(folder, n_scenes: int, n_shards: int) -> list:
    """``n_scenes`` one-region 4x4 scenes (ids 0, 1, ...) over ``n_shards`` shards in row groups of two."""
    paths = []
    for s, ids in enumerate(np.array_split(np.arange(n_scenes), n_shards)):
        scenes = [Scene(int(i), 4, 4, [Region(1, Mask.from_bitmap(np.eye(4, dtype=bool)))], OcclusionOrder(set()))
                  for i in ids]
        paths.append(folder / shard_name("train", s, n_shards))
        write_shard(scenes, paths[-1], row_group_size=2)
    return paths


def test_ranks_get_equal_disjoint_contiguous_rows(tmp_path):
    paths = tiny_shards(tmp_path, 7, 3)                      # shards of 3, 2, 2 rows
    shards = ShardSet(tmp_path)
    assert shards.paths == paths and shards.counts == [3, 2, 2] and len(shards) == 7
    per_rank = [shards.partition(rank=r, world_size=2) for r in range(2)]
    rows = [[(p.path.name, i) for p in piece for i in range(p.start, p.stop)] for piece in per_rank]
    assert len(rows[0]) == len(rows[1]) == 3                   # 7 // 2, the last row dropped
    assert not set(rows[0]) & set(rows[1])
    assert {p.path for p in per_rank[0]} == {paths[0]}         # rank 0 reads shard 0 only
    ids = [[row["image_id"] for _, row in ShardSet.slice_rows(piece)] for piece in per_rank]
    assert ids == [["0", "1", "2"], ["3", "4", "5"]]


def test_workers_split_a_rank_and_every_row_is_read_once(tmp_path):
    paths = tiny_shards(tmp_path, 7, 3)
    shards = ShardSet(tmp_path)
    pieces = [shards.partition(worker=w, num_workers=3) for w in range(3)]
    seen = sorted((p.path.name, i) for ps in pieces for p in ps for i in range(p.start, p.stop))
    assert seen == sorted({(p.name, i) for p, n in zip(paths, shards.counts) for i in range(n)})
    kept = [shards.partition(rank=r, world_size=2, drop_remainder=False) for r in range(2)]
    assert sorted(row["image_id"] for ps in kept for _, row in ShardSet.slice_rows(ps)) == [str(i) for i in range(7)]
    with pytest.raises(ValueError, match="bad partition index"):
        shards.partition(rank=2, world_size=2)


def test_shuffled_rows_of_a_slice_read_only_its_row_groups(tmp_path):
    tiny_shards(tmp_path, 7, 1)                               # row groups [0, 1], [2, 3], [4, 5], [6]
    piece = ShardSet(tmp_path).partition(rank=1, world_size=3)[0]
    assert (piece.start, piece.stop) == (2, 4)
    rows = [row["image_id"] for _, row in ShardSet.slice_rows([piece], np.random.default_rng(0))]
    assert sorted(rows) == ["2", "3"]
    scenes, rates, edges = ShardSet(tmp_path).occlusion()
    assert (scenes, rates.shape, edges) == (7, (7,), 0)
