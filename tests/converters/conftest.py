"""Small annotation files of every format, written here from the formats' schemas (FORMATS.md), not by our writers.

Two images of 40 x 30 pixels (and a third, unannotated one for the COCO-style formats). Image 1 holds, front to
back: A (rectangle), B (rectangle behind A), C (triangle behind B), D (a square apart from the rest); image 2
holds E (two polygons) in front of F. Visible and hidden masks are rasterised here with pycocotools from that
order, independently of the package's layer stack.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import shapely
from pycocotools import mask as cocomask

from converters.labels import COCO_CATEGORIES, KINS_CATEGORIES

W, H = 40, 30

#: (image id, [(key, polygons, is_stuff)], front to back)
OBJECTS: list[tuple[int, list[tuple[str, list[list[float]], bool]]]] = [
    (1, [("A", [[2.0, 2.0, 20.0, 2.0, 20.0, 28.0, 2.0, 28.0]], False),
         ("B", [[12.0, 6.0, 34.0, 6.0, 34.0, 20.0, 12.0, 20.0]], False),
         ("C", [[25.5, 1.0, 38.0, 1.0, 38.0, 18.5]], False),
         ("D", [[30.0, 23.0, 36.0, 23.0, 36.0, 28.0, 30.0, 28.0]], True)]),
    (2, [("E", [[3.0, 3.0, 12.0, 3.0, 12.0, 12.0, 3.0, 12.0], [20.0, 3.0, 27.0, 3.0, 27.0, 10.0]], False),
         ("F", [[5.0, 5.0, 30.0, 5.0, 30.0, 25.0, 5.0, 25.0]], True)]),
]
#: Names per object for COCOA (free text, as annotators wrote them) and per target table.
COCOA_NAMES = {"A": "person ", "B": "car", "C": "dog", "D": "grass", "E": "doughnut", "F": "table"}
COCO_IDS = {"A": 1, "B": 3, "C": 18, "D": 62, "E": 60, "F": 67}
KINS_IDS = {"A": 2, "B": 4, "C": 7, "D": 8, "E": 1, "F": 6}
D2SA_CATEGORIES = {29: "avocado", 31: "banana_single", 36: "kiwi", 39: "pear", 60: "zucchini"}
D2SA_IDS = {"A": 29, "B": 31, "C": 36, "D": 39, "E": 60, "F": 29}


def rle(bitmap: np.ndarray) -> dict:
    coded = cocomask.encode(np.asfortranarray(bitmap.astype(np.uint8)))
    return {"size": [int(v) for v in coded["size"]], "counts": coded["counts"].decode("ascii")}


def raster(polygons: list[list[float]]) -> np.ndarray:
    return cocomask.decode(cocomask.merge(cocomask.frPyObjects(polygons, H, W))).astype(bool)


def geometry() -> list[tuple[int, list[dict[str, Any]]]]:
    """Per image, per object front to back: key, polygons, stuff flag, amodal / visible / hidden bitmaps."""
    out = []
    for image_id, objects in OBJECTS:
        covered = np.zeros((H, W), dtype=bool)
        items = []
        for key, polygons, stuff in objects:
            amodal = raster(polygons)
            visible = amodal & ~covered
            covered |= amodal
            items.append({"key": key, "polygons": polygons, "stuff": stuff, "amodal": amodal,
                          "visible": visible, "hidden": amodal & ~visible})
        out.append((image_id, items))
    return out


def bbox_of(polygons: list[list[float]]) -> list[float]:
    xs = [v for p in polygons for v in p[0::2]]
    ys = [v for p in polygons for v in p[1::2]]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def cocoa_data(bsds: bool = False) -> dict:
    """A COCOA (or BSDS-amodal: two annotators on image 1) release file."""
    images, annotations = [], []
    for image_id, items in geometry():
        url_key = "bsds_url" if bsds else "coco_url"
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": W, "height": H, "license": 3,
                       url_key: f"http://example.org/{image_id}.jpg"})
        authors = ["alice", "bob"] if bsds and image_id == 1 else ["alice"]
        for author in authors:
            regions = []
            for rank, item in enumerate(items, start=1):
                area = int(item["amodal"].sum())
                hidden = int(item["hidden"].sum())
                region = {"segmentation": item["polygons"][0] if len(item["polygons"]) == 1 else item["polygons"],
                          "name": COCOA_NAMES[item["key"]], "area": area, "isStuff": int(item["stuff"])}
                if hidden:
                    region["visible_mask"] = rle(item["visible"])
                    region["invisible_mask"] = rle(item["hidden"])
                region["occlude_rate"] = hidden / area if hidden else 0
                region["order"] = rank
                regions.append(region)
            pairs = [f"{i + 1}-{j + 1}" for i in range(len(items)) for j in range(i + 1, len(items))
                     if (items[i]["amodal"] & items[j]["amodal"]).any()]
            if author == "bob":        # a second annotator: same outlines, another name for the stuff
                regions[-1]["name"] = "lawn"
            annotations.append({"author": author, "url": f"http://example.org/{'bsds' if bsds else 'coco'}/"
                                f"{image_id}.jpg", "regions": regions, "image_id": image_id,
                                "id": len(annotations) + 1, "size": len(regions),
                                "depth_constraint": ",".join(pairs)})
    return {"images": images, "annotations": annotations}


def visible_polygons(polygons: list[list[float]], fronts: list[list[list[float]]]) -> list[list[float]]:
    """The visible part of an outline as polygons (shapely: the outline minus the nearer ones), as KINS 2020's
    annotators drew ``i_segm``; its rasterisation is the instance's given visible mask."""
    shape = shapely.union_all([shapely.Polygon(np.reshape(p, (-1, 2))) for p in polygons])
    for front in fronts:
        shape = shape.difference(shapely.union_all([shapely.Polygon(np.reshape(p, (-1, 2))) for p in front]))
    return [np.asarray(part.exterior.coords)[:-1].ravel().tolist() for part in shapely.get_parts(shape)
            if not part.is_empty]


def instances_data(fmt: str, rle_amodal: bool | None = None) -> dict:
    """A COCO-style file: ``cocoa-cls``, ``kins`` (original), ``kins-2020`` or ``d2sa``, in the encodings of the
    real release (FORMATS.md): COCOA-cls RLE amodal masks, KINS 2020 polygons in ``a_segm`` and ``i_segm`` with
    ``a_area`` / ``i_area``; ``rle_amodal`` True / False forces RLE / polygon amodal masks (other variants the
    public loaders accept)."""
    if rle_amodal is None:
        rle_amodal = fmt == "cocoa-cls"
    images = [{"id": image_id, "file_name": f"{'COCO_val2014_' if fmt == 'cocoa-cls' else ''}{image_id:06d}.png",
               "width": W, "height": H} for image_id in (1, 2, 3)]
    annotations = []
    for image_id, items in geometry():
        # KINS 2020 clusters: image 1's A, B, C overlap (cluster), D stands alone; image 2's E, F overlap
        level: dict[str, int] = {}
        for i, item in enumerate(items):
            fronts = [level[o["key"]] for o in items[:i] if (o["amodal"] & item["amodal"]).any()]
            level[item["key"]] = 1 + max(fronts, default=0)
        for item in items:
            key = item["key"]
            area = int(item["amodal"].sum())
            hidden = int(item["hidden"].sum())
            ann: dict[str, Any] = {"id": 100 + len(annotations), "image_id": image_id, "iscrowd": 0, "area": area}
            amodal = rle(item["amodal"]) if rle_amodal else item["polygons"]
            visible_box = [float(v) for v in cocomask.toBbox(cocomask.encode(
                np.asfortranarray(item["visible"].astype(np.uint8))))]
            if fmt == "kins":
                ann.update(category_id=KINS_IDS[key], segmentation=amodal, bbox=bbox_of(item["polygons"]),
                           inmodal_seg=rle(item["visible"]), inmodal_bbox=visible_box)
            elif fmt == "kins-2020":
                alone = level[key] == 1 and not any((o["amodal"] & item["amodal"]).any()
                                                    for o in items if o is not item)
                fronts = [o["polygons"] for o in items[:items.index(item)]]
                i_segm = visible_polygons(item["polygons"], fronts) if hidden else item["polygons"]
                del ann["area"]
                ann.update(category_id=KINS_IDS[key], a_segm=amodal, a_bbox=bbox_of(item["polygons"]),
                           i_segm=i_segm, i_bbox=bbox_of(i_segm), a_area=area, i_area=int(raster(i_segm).sum()),
                           oco_id=image_id * 10 + (2 if alone else 1), ico_id=0 if alone else level[key])
            else:
                ids = COCO_IDS if fmt == "cocoa-cls" else D2SA_IDS
                box = [float(v) for v in cocomask.toBbox(amodal)] if rle_amodal else bbox_of(item["polygons"])
                ann.update(category_id=ids[key], segmentation=amodal, bbox=box, visible_mask=rle(item["visible"]))
                if hidden:
                    ann["invisible_mask"] = rle(item["hidden"])
                ann["occlude_rate"] = hidden / area if hidden else 0
                if fmt == "d2sa":       # the release's own fields and types: a bool iscrowd, float area and rate
                    order = items.index(item) + 1
                    ann.update(iscrowd=False, area=float(area), occlude_rate=float(ann["occlude_rate"]),
                               occl_depth=level[key] - 1,
                               amodal_region={"name": D2SA_CATEGORIES[D2SA_IDS[key]], "area": float(area),
                                              "isStuff": 0, "bbox": box, "order": order},
                               amodal_base={"url": f"{image_id:06d}.png", "image_id": image_id, "size": len(items),
                                            "author": "mvtec", "depth_constraint": ""})
            annotations.append(ann)
    if fmt == "cocoa-cls":
        categories = [{"id": i, "name": n, "supercategory": s} for i, (n, s) in COCO_CATEGORIES.items()]
    elif fmt == "d2sa":
        categories = [{"id": i, "name": n} for i, n in D2SA_CATEGORIES.items()]
    else:
        categories = [{"id": i, "name": n} for i, n in KINS_CATEGORIES.items()]
    return {"images": images, "annotations": annotations, "categories": categories}


@pytest.fixture
def make_file(tmp_path: Path) -> Callable[..., Path]:
    """``make_file(fmt, **options)`` writes the small file of that format and returns its path."""

    def make(fmt: str, name: str | None = None, **options: Any) -> Path:
        data = cocoa_data(bsds=fmt == "bsds") if fmt in ("cocoa", "bsds") else instances_data(fmt, **options)
        return write(tmp_path / (name or f"{fmt}.json"), data)

    return make


def signature(scene: Any, labels: bool = True, stuff: bool = True) -> tuple:
    """What a round trip must keep: per region front to back, the amodal and visible pixels (RLE counts), the
    label (name, case- and space-insensitive) and the stuff flag; plus the image id and size."""
    stack = scene.layers
    by_id = {r.id: r for r in scene.regions}
    regions = []
    for rid in stack.front_to_back:
        region = by_id[rid]
        regions.append((rle(region.amodal.to_bitmap())["counts"], rle(stack.visible(rid))["counts"],
                        " ".join(region.name.lower().split()) if labels and region.name is not None else None,
                        region.is_stuff if stuff else None))
    return (scene.id, scene.height, scene.width, tuple(regions))


@pytest.fixture
def sig() -> Callable[..., tuple]:
    """:func:`signature` of a scene (round-trip comparisons)."""
    return signature
