"""Category tables, label maps and the built-in COCOA -> COCO synonyms."""

from __future__ import annotations

import json

import pytest

from amodaldata.errors import AnnotationError
from converters.labels import (COCO_CATEGORIES, COCO_TABLE, COCOA_TO_COCO, KINS_TABLE, load_label_map, normalise,
                               resolve)


def test_tables():
    assert len(COCO_CATEGORIES) == 80 and min(COCO_CATEGORIES) == 1 and max(COCO_CATEGORIES) == 90
    assert COCO_TABLE.id_of(" Dining  Table ") == 67 and COCO_TABLE.id_of("sofa") is None
    assert KINS_TABLE.id_of("car") == 4 and 3 in KINS_TABLE


def test_builtin_map_holds_only_synonyms_of_coco_classes():
    names = {normalise(n) for n, _ in COCO_CATEGORIES.values()}
    assert all(target in names for target in COCOA_TO_COCO.values())
    assert not names & set(COCOA_TO_COCO)              # class names match by themselves
    for ambiguous in ("phone", "bike", "table", "monitor", "cup", "espresso cup", "books", "man"):
        assert ambiguous not in COCOA_TO_COCO


def test_resolve_precedence():
    label_map = load_label_map({"Car ": "truck", "kitty": 17})
    assert resolve("car", None, COCO_TABLE, label_map) == (8, "label map")
    assert resolve("kitty", None, COCO_TABLE, label_map) == (17, "label map")
    assert resolve("Person", 99, COCO_TABLE, label_map) == (1, "name")
    assert resolve(None, 18, COCO_TABLE) == (18, "id")
    assert resolve(None, 12, COCO_TABLE) == (None, "category id 12 is not in the target's table")
    assert resolve("lamp", None, COCO_TABLE) == (None, "no category named 'lamp'")
    bad = load_label_map({"lamp": "lantern"})
    assert resolve("lamp", None, COCO_TABLE, bad)[0] is None


def test_label_map_files(tmp_path):
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"Espresso Cup": "cup", "mug": 47}))
    assert load_label_map(path) == {"espresso cup": "cup", "mug": 47}
    assert load_label_map("cocoa-coco")["sofa"] == "couch"
    path.write_text("[1, 2]")
    with pytest.raises(AnnotationError, match="map.json: label map must be a JSON object"):
        load_label_map(path)
    path.write_text(json.dumps({"cup": [1]}))
    with pytest.raises(AnnotationError, match="entry 'cup' must map to a category id or name"):
        load_label_map(path)
    path.write_text("{")
    with pytest.raises(AnnotationError, match="label map is not valid JSON"):
        load_label_map(path)
    with pytest.raises(AnnotationError, match="label map file not found"):
        load_label_map(tmp_path / "none.json")
