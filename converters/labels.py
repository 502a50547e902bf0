"""Category tables, label maps, and resolving a region's label into a target format's categories.

- :data:`COCO_CATEGORIES`: the 80 COCO thing classes (ids 1 to 90 with gaps) used by COCOA-cls.
- :data:`KINS_CATEGORIES`: KINS's table (FORMATS.md; id 3 "rider" is declared in some copies, never used).
- :data:`COCOA_TO_COCO`: the built-in map from COCOA's free-text names to COCO classes. Only names that mean
  the class with certainty are listed: the class name itself (matched case- and space-insensitively, so it is
  not listed) and true synonyms or spelling variants ("sofa" -> couch, "doughnut" -> donut). Hyponyms
  ("espresso cup"), ambiguous words ("phone", "bike", "table", "monitor"), plurals (a COCOA region named
  "books" covers several objects) and misspellings are left out: map them with your own ``--label-map``.
- A label map file is a JSON object ``{"free-text name": category id or category name, ...}``; keys match
  names case- and space-insensitively.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from amodaldata.errors import AnnotationError

#: COCO's 80 thing categories: id -> (name, supercategory).
COCO_CATEGORIES: dict[int, tuple[str, str]] = {
    1: ("person", "person"), 2: ("bicycle", "vehicle"), 3: ("car", "vehicle"), 4: ("motorcycle", "vehicle"),
    5: ("airplane", "vehicle"), 6: ("bus", "vehicle"), 7: ("train", "vehicle"), 8: ("truck", "vehicle"),
    9: ("boat", "vehicle"), 10: ("traffic light", "outdoor"), 11: ("fire hydrant", "outdoor"),
    13: ("stop sign", "outdoor"), 14: ("parking meter", "outdoor"), 15: ("bench", "outdoor"),
    16: ("bird", "animal"), 17: ("cat", "animal"), 18: ("dog", "animal"), 19: ("horse", "animal"),
    20: ("sheep", "animal"), 21: ("cow", "animal"), 22: ("elephant", "animal"), 23: ("bear", "animal"),
    24: ("zebra", "animal"), 25: ("giraffe", "animal"), 27: ("backpack", "accessory"),
    28: ("umbrella", "accessory"), 31: ("handbag", "accessory"), 32: ("tie", "accessory"),
    33: ("suitcase", "accessory"), 34: ("frisbee", "sports"), 35: ("skis", "sports"),
    36: ("snowboard", "sports"), 37: ("sports ball", "sports"), 38: ("kite", "sports"),
    39: ("baseball bat", "sports"), 40: ("baseball glove", "sports"), 41: ("skateboard", "sports"),
    42: ("surfboard", "sports"), 43: ("tennis racket", "sports"), 44: ("bottle", "kitchen"),
    46: ("wine glass", "kitchen"), 47: ("cup", "kitchen"), 48: ("fork", "kitchen"), 49: ("knife", "kitchen"),
    50: ("spoon", "kitchen"), 51: ("bowl", "kitchen"), 52: ("banana", "food"), 53: ("apple", "food"),
    54: ("sandwich", "food"), 55: ("orange", "food"), 56: ("broccoli", "food"), 57: ("carrot", "food"),
    58: ("hot dog", "food"), 59: ("pizza", "food"), 60: ("donut", "food"), 61: ("cake", "food"),
    62: ("chair", "furniture"), 63: ("couch", "furniture"), 64: ("potted plant", "furniture"),
    65: ("bed", "furniture"), 67: ("dining table", "furniture"), 70: ("toilet", "furniture"),
    72: ("tv", "electronic"), 73: ("laptop", "electronic"), 74: ("mouse", "electronic"),
    75: ("remote", "electronic"), 76: ("keyboard", "electronic"), 77: ("cell phone", "electronic"),
    78: ("microwave", "appliance"), 79: ("oven", "appliance"), 80: ("toaster", "appliance"),
    81: ("sink", "appliance"), 82: ("refrigerator", "appliance"), 84: ("book", "indoor"),
    85: ("clock", "indoor"), 86: ("vase", "indoor"), 87: ("scissors", "indoor"), 88: ("teddy bear", "indoor"),
    89: ("hair drier", "indoor"), 90: ("toothbrush", "indoor"),
}

#: KINS (Qi et al. 2019) categories: id -> name.
KINS_CATEGORIES: dict[int, str] = {1: "cyclist", 2: "pedestrian", 3: "rider", 4: "car", 5: "tram", 6: "truck",
                                   7: "van", 8: "misc"}

#: Synonyms and spelling variants of COCO class names (see the module docstring for what is left out).
COCOA_TO_COCO: dict[str, str] = {
    "aeroplane": "airplane",
    "motorbike": "motorcycle",
    "automobile": "car",
    "lorry": "truck",
    "traffic signal": "traffic light", "stoplight": "traffic light", "stop light": "traffic light",
    "hydrant": "fire hydrant",
    "rucksack": "backpack", "knapsack": "backpack",
    "baseball mitt": "baseball glove",
    "tennis racquet": "tennis racket",
    "wineglass": "wine glass",
    "doughnut": "donut",
    "hotdog": "hot dog",
    "sofa": "couch",
    "dinner table": "dining table",
    "television": "tv", "television set": "tv", "tv set": "tv",
    "laptop computer": "laptop", "notebook computer": "laptop",
    "computer mouse": "mouse",
    "remote control": "remote",
    "computer keyboard": "keyboard",
    "cellphone": "cell phone", "cell-phone": "cell phone", "mobile phone": "cell phone",
    "smartphone": "cell phone", "smart phone": "cell phone",
    "microwave oven": "microwave",
    "fridge": "refrigerator",
    "teddy": "teddy bear", "teddybear": "teddy bear",
    "hair dryer": "hair drier", "hairdryer": "hair drier", "blow dryer": "hair drier",
    "tooth brush": "toothbrush",
}

#: Name of the built-in map accepted by ``--label-map``.
BUILTIN_MAPS = {"cocoa-coco": COCOA_TO_COCO}


def normalise(name: str) -> str:
    """Case- and space-insensitive form of a label: stripped, lower case, inner runs of spaces collapsed."""
    return re.sub(r"\s+", " ", name.strip().lower())


@dataclass(frozen=True)
class CategoryTable:
    """A format's categories: id -> name, looked up both ways (names normalised)."""

    names: Mapping[int, str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ids", {normalise(n): i for i, n in self.names.items()})

    def id_of(self, name: str) -> int | None:
        return self._ids.get(normalise(name))  # type: ignore[attr-defined]

    def __contains__(self, category_id: object) -> bool:
        return category_id in self.names


COCO_TABLE = CategoryTable({i: n for i, (n, _) in COCO_CATEGORIES.items()})
KINS_TABLE = CategoryTable(KINS_CATEGORIES)


def load_label_map(source: str | Path | Mapping[str, int | str]) -> dict[str, int | str]:
    """A label map from a JSON file, a built-in name (``cocoa-coco``) or a mapping; keys normalised.

    Raises :class:`AnnotationError` naming the file when it is not an object of names to ids or names.
    """
    if isinstance(source, Mapping):
        data, where = dict(source), None
    elif str(source) in BUILTIN_MAPS:
        data, where = dict(BUILTIN_MAPS[str(source)]), None
    else:
        where = str(source)
        try:
            data = json.loads(Path(source).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise AnnotationError("label map file not found", file=where) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise AnnotationError(f"label map is not valid JSON: {exc}", file=where) from None
    if not isinstance(data, dict):
        raise AnnotationError(f"label map must be a JSON object of name -> category, got "
                              f"{type(data).__name__}", file=where)
    out: dict[str, int | str] = {}
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise AnnotationError(f"label map entry {key!r} must map to a category id or name, got {value!r}",
                                  file=where)
        out[normalise(key)] = value
    return out


def resolve(name: str | None, category_id: int | None, table: CategoryTable,
            label_map: Mapping[str, int | str] | None = None) -> tuple[int | None, str]:
    """The category id of a region in ``table`` and how it was found, or ``(None, why not)``.

    In turn: the label map entry of the name (an id, or a name looked up in the table); the name itself
    as a category name of the table; the region's category id when it has no name (ids are assumed to be
    of the target's table). The second element is one of ``"label map"``, ``"name"``, ``"id"``, or the
    reason no category was found.
    """
    if name is not None and label_map:
        mapped = label_map.get(normalise(name))
        if mapped is not None:
            cid = mapped if isinstance(mapped, int) else table.id_of(mapped)
            if cid is None or cid not in table:
                return None, f"label map sends {name.strip()!r} to {mapped!r}, not a category of the target"
            return cid, "label map"
    if name is not None:
        cid = table.id_of(name)
        if cid is not None:
            return cid, "name"
        return None, f"no category named {name.strip()!r}"
    if category_id is not None:
        if category_id in table:
            return category_id, "id"
        return None, f"category id {category_id} is not in the target's table"
    return None, "no name and no category id"
