"""What each writer produces, loaded the way the public loaders named in FORMATS.md load it.

Each ``load_*`` helper re-types the key logic of one loader from its documented behaviour (which fields it
reads and which pycocotools call it makes on them); none is copied. A writer passes when the loader gets the
masks, boxes, areas and order fields of the source back, pixel for pixel.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from converters import READERS, WRITERS
from converters.cocoa import read_cocoa
from converters.losses import LossReport

#: Every COCOA fixture name -> a COCO class (for COCOA-cls) or a KINS class (for KINS), so that every
#: region is written.
COCO_ALL = "cup"
KINS_ALL = "misc"


def load_json(path: Path) -> tuple[dict[Any, tuple[int, int]], list[dict]]:
    data = json.loads(path.read_text())
    return {im["id"]: (im["height"], im["width"]) for im in data["images"]}, data["annotations"]


def polygons_to_mask(polygons: Any, h: int, w: int) -> np.ndarray:
    """``frPyObjects`` on the field as stored, then ``merge``, then ``decode`` (C2F-Seg's KINS loader, the KINS
    authors' script and deocclusion's reader on polygon fields)."""
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, h, w))).astype(bool)


def detectron2_polygons(polygons: Any) -> list:
    """detectron2's polygon check (aistron and VRSP register their sets through it): a list of flat lists,
    each of even length >= 6."""
    assert isinstance(polygons, list) and polygons, "segmentation is not a polygon list"
    valid = [p for p in polygons if isinstance(p, list) and len(p) % 2 == 0 and len(p) >= 6]
    assert len(valid) == len(polygons), "polygon of fewer than 3 points or odd length"
    return valid


def load_c2f_cocoa(path: Path) -> list[tuple[Any, np.ndarray, np.ndarray]]:
    """C2F-Seg ``data/dataloader_COCOA.py``: ``mask_utils.decode`` on ``segmentation`` and ``visible_mask``
    directly, so both must be RLE objects."""
    _, anns = load_json(path)
    return [(a["image_id"], mask_utils.decode(a["segmentation"]).astype(bool),
             mask_utils.decode(a["visible_mask"]).astype(bool)) for a in anns]


def load_c2f_kins(path: Path) -> list[tuple[Any, np.ndarray, np.ndarray]]:
    """C2F-Seg ``data/dataloader_KINS.py``: ``frPyObjects`` + ``merge`` on both ``a_segm`` and ``i_segm``."""
    sizes, anns = load_json(path)
    return [(a["image_id"], polygons_to_mask(a["a_segm"], *sizes[a["image_id"]]),
             polygons_to_mask(a["i_segm"], *sizes[a["image_id"]])) for a in anns]


def load_kins_authors(path: Path) -> list[tuple[Any, np.ndarray, np.ndarray]]:
    """The KINS authors' ``kitti_vis_without_cocoapi.py``: ``frPyObjects(segmentation)`` and
    ``decode(inmodal_seg)``."""
    sizes, anns = load_json(path)
    return [(a["image_id"], polygons_to_mask(a["segmentation"], *sizes[a["image_id"]]),
             mask_utils.decode(a["inmodal_seg"]).astype(bool)) for a in anns]


def source_masks(scenes: list) -> list[tuple[Any, np.ndarray, np.ndarray]]:
    """Per region front to back (the writers' order): image id, amodal bitmap, visible bitmap (the given one,
    else the part the order leaves visible)."""
    out = []
    for scene in scenes:
        stack = scene.layers
        for rid in stack.front_to_back:
            region = scene.region(rid)
            visible = region.visible.to_bitmap() if region.visible is not None else stack.visible(rid)
            out.append((scene.id, region.amodal.to_bitmap(), visible))
    return out


def same_masks(loaded: list, expected: list) -> None:
    assert len(loaded) == len(expected)
    for (image_a, amodal_a, visible_a), (image_b, amodal_b, visible_b) in zip(loaded, expected):
        assert image_a == image_b
        assert np.array_equal(amodal_a, amodal_b) and np.array_equal(visible_a, visible_b)


def everything_to(cocoa_json: Path, name: str) -> dict[str, str]:
    return {r.name: name for s in read_cocoa(cocoa_json) for r in s.regions}


def test_cocoa_cls_loads_in_c2f_seg_aistron_and_vrsp(cocoa_json, tmp_path):
    out = tmp_path / "COCO_amodal_val2014_with_classes.json"
    losses = LossReport()
    WRITERS["cocoa-cls"](read_cocoa(cocoa_json), out, label_map=everything_to(cocoa_json, COCO_ALL), losses=losses)
    same_masks(load_c2f_cocoa(out), source_masks(list(read_cocoa(cocoa_json))))
    sizes, anns = load_json(out)
    for ann in anns:         # aistron prepare_cocoa.py / VRSP cocoa_cls.py read these keys
        assert {"id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation", "visible_mask",
                "occlude_rate"} <= set(ann) <= {"id", "image_id", "category_id", "bbox", "area", "iscrowd",
                                                "segmentation", "visible_mask", "invisible_mask", "occlude_rate"}
        assert ann["iscrowd"] == 0 and ann["area"] == int(mask_utils.area(ann["segmentation"]))
        assert ann["bbox"] == [float(v) for v in mask_utils.toBbox(ann["segmentation"])]
        if ann["occlude_rate"]:
            hidden = mask_utils.decode(ann["invisible_mask"]).astype(bool)
            assert ann["occlude_rate"] == pytest.approx(hidden.sum() / ann["area"])
    assert any("amodal outlines written as RLE in 'segmentation'" in line for line in losses.lines())


@pytest.mark.parametrize("source", ["cocoa", "d2sa-rle"])
def test_kins_2020_loads_in_c2f_seg_vinv_and_aistron(source, cocoa_json, make_file, tmp_path):
    """COCOA's polygons, and a D2SA file holding only RLE (traced into polygons), written as KINS 2020."""
    if source == "cocoa":
        scenes, label_map = list(read_cocoa(cocoa_json)), everything_to(cocoa_json, KINS_ALL)
    else:
        scenes = list(READERS["d2sa"](make_file("d2sa", rle_amodal=True)))
        label_map = {r.name: KINS_ALL for s in scenes for r in s.regions}
    out = tmp_path / "update_test_2020.json"
    losses = LossReport()
    WRITERS["kins-2020"](scenes, out, label_map=label_map, losses=losses)
    same_masks(load_c2f_kins(out), source_masks(scenes))
    sizes, anns = load_json(out)
    for ann in anns:
        assert "area" not in ann
        for field in ("a_segm", "i_segm"):          # aistron prepare_kins2020.py, through detectron2
            detectron2_polygons(ann[field])
        h, w = sizes[ann["image_id"]]
        assert ann["a_area"] == int(polygons_to_mask(ann["a_segm"], h, w).sum())     # the visualiser's areas
        assert ann["i_area"] == int(polygons_to_mask(ann["i_segm"], h, w).sum())
        assert isinstance(ann["ico_id"], int) and ann["ico_id"] >= 0      # VINV mmdet/datasets/kins.py needs it
        assert isinstance(ann["oco_id"], int) and ann["oco_id"] >= 1
        assert ann["iscrowd"] == 0 and len(ann["a_bbox"]) == len(ann["i_bbox"]) == 4
    lines = "\n".join(losses.lines())
    assert "masks without polygons traced into polygons for 'i_segm' (kins-2020 holds polygons; pixel-exact, " \
           "worst IoU 1.0000)" in lines
    assert ("traced into polygons for 'a_segm'" in lines) == (source == "d2sa-rle")


def test_kins_original_loads_in_the_authors_script_from_rle_sources(make_file, tmp_path):
    scenes = list(READERS["d2sa"](make_file("d2sa", rle_amodal=True)))
    out = tmp_path / "instances_val.json"
    losses = LossReport()
    WRITERS["kins"](scenes, out, label_map={r.name: KINS_ALL for s in scenes for r in s.regions}, losses=losses)
    same_masks(load_kins_authors(out), source_masks(scenes))
    assert "masks without polygons traced into polygons for 'segmentation' (kins holds polygons; pixel-exact, " \
           "worst IoU 1.0000): 6" in "\n".join(losses.lines())


def test_d2sa_fields_do_not_leak_into_kins_2020(make_file, tmp_path):
    losses = LossReport()
    scenes = list(READERS["d2sa"](make_file("d2sa")))
    WRITERS["kins-2020"](scenes, tmp_path / "k.json", label_map={r.name: KINS_ALL for s in scenes for r in s.regions},
                         losses=losses)
    _, anns = load_json(tmp_path / "k.json")
    assert all(set(a) == {"id", "image_id", "category_id", "a_segm", "a_bbox", "a_area", "iscrowd", "i_segm",
                          "i_bbox", "i_area", "oco_id", "ico_id"} for a in anns)
    assert all(a["iscrowd"] == 0 and not isinstance(a["iscrowd"], bool) for a in anns)
    lines = "\n".join(losses.lines())
    assert "instance fields with no place in kins-2020, not written: 18 [amodal_base x6, amodal_region x6, " \
           "occl_depth x6]" in lines
    assert "iscrowd" not in lines              # the flag is kept, written in kins-2020's type: nothing is lost


def test_d2sa_writes_its_own_types_from_other_formats(make_file, tmp_path):
    scenes = list(READERS["kins"](make_file("kins")))
    WRITERS["d2sa"](scenes, tmp_path / "d.json")
    _, anns = load_json(tmp_path / "d.json")
    assert all(a["iscrowd"] is False and isinstance(a["area"], float) and isinstance(a["occlude_rate"], float)
               for a in anns)
    for ann in anns:        # aistron prepare_d2sa.py / VRSP d2sa.py: segmentation polygons or RLE, visible RLE
        assert isinstance(ann["visible_mask"], dict) and mask_utils.decode(ann["visible_mask"]).any()
        detectron2_polygons(ann["segmentation"])


def test_kins_2020_reader_accepts_the_variants_the_loaders_accept(make_file, tmp_path, sig):
    """RLE in ``a_segm`` / ``i_segm``, plain ``area`` instead of ``a_area``, and an empty ``i_segm`` list."""
    path = make_file("kins-2020")
    before = list(READERS["kins"](path))
    data = json.loads(path.read_text())
    for ann in data["annotations"]:
        h, w = 30, 40
        ann["i_segm"] = {k: (v.decode() if isinstance(v, bytes) else v)
                         for k, v in mask_utils.merge(mask_utils.frPyObjects(ann["i_segm"], h, w)).items()}
        ann["area"] = ann.pop("a_area")
        del ann["i_area"]
    variant = tmp_path / "variant.json"
    variant.write_text(json.dumps(data))
    assert [sig(s) for s in READERS["kins"](variant)] == [sig(s) for s in before]
    data["annotations"][2]["i_segm"] = []
    variant.write_text(json.dumps(data))
    assert not next(iter(READERS["kins"](variant))).regions[2].visible.to_bitmap().any()
