"""What a conversion could not carry over: counted per kind, with the first examples, never silent.

Writers record what their format cannot hold while they write (:class:`LossReport`); :func:`source_gaps`
adds what the target expects but the source format never had (e.g. KINS -> COCOA: no ``isStuff``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

#: What each format holds. ``names``: free-text labels; ``categories``: a category table; ``stuff``: the
#: thing/stuff flag; ``order``: an explicit occlusion order; ``visible``: visible masks independent of the
#: order; ``annotators``: several annotations of one image; ``image_bytes``: the image itself.
HOLDS: dict[str, frozenset[str]] = {
    "cocoa": frozenset({"names", "stuff", "order", "annotators"}),
    "bsds": frozenset({"names", "stuff", "order", "annotators"}),
    "cocoa-cls": frozenset({"categories", "visible"}),
    "kins": frozenset({"categories", "visible"}),
    "kins-2020": frozenset({"categories", "visible", "order"}),
    "d2sa": frozenset({"categories", "visible"}),
    "parquet": frozenset({"names", "categories", "stuff", "order", "visible", "annotators", "image_bytes"}),
}

#: Sources whose order is partly stored (KINS: read as one format, two releases).
ORDER_NOTES = {
    "kins": "kins: the original release stores no occlusion order, so the order written was derived from the "
            "visible and amodal masks; a 2020 release's ico_id ranks decided the pairs inside each oco_id cluster",
}

#: How many examples (locations) and details (e.g. unmapped names) each kind of loss shows.
EXAMPLES = 3
DETAILS = 40


@dataclass
class Written:
    """What a writer actually wrote: scenes (images, or annotation objects for COCOA) and regions."""

    scenes: int = 0
    regions: int = 0

    def add(self, regions: int) -> None:
        """Count one scene written with ``regions`` regions."""
        self.scenes += 1
        self.regions += regions


@dataclass
class LossReport:
    """Counts of items a writer could not represent, by kind, with the first :data:`EXAMPLES` locations."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    details: dict[str, Counter] = field(default_factory=dict)

    def add(self, kind: str, image_id: Any = None, region_id: Any = None, n: int = 1,
            detail: str | None = None) -> None:
        """Record ``n`` items of ``kind`` (a sentence saying what was lost and why), located if known;
        ``detail`` (e.g. the name that found no category) is tallied per kind."""
        self.counts[kind] = self.counts.get(kind, 0) + n
        if detail is not None:
            self.details.setdefault(kind, Counter())[detail] += n
        where = ", ".join(p for p in (f"image {image_id}" if image_id is not None else "",
                                      f"region {region_id}" if region_id is not None else "") if p)
        shown = self.examples.setdefault(kind, [])
        if where and len(shown) < EXAMPLES and where not in shown:
            shown.append(where)

    def lines(self, details: int = DETAILS) -> list[str]:
        """One line per kind: ``kind: N [details] (e.g. image 1, region 2; ...)``, the ``details`` most
        frequent details shown."""
        out = []
        for kind, n in self.counts.items():
            line = f"{kind}: {n}"
            tally = self.details.get(kind)
            if tally:
                shown = ", ".join(f"{d} x{c}" for d, c in tally.most_common(details))
                more = len(tally) - details
                line += f" [{shown}{f', and {more} more' if more > 0 else ''}]"
            examples = self.examples.get(kind)
            if examples:
                line += f" (e.g. {'; '.join(examples)})"
            out.append(line)
        return out

    def __bool__(self) -> bool:
        return bool(self.counts)


def source_gaps(src: str, dst: str) -> list[str]:
    """What ``dst`` stores that ``src`` never has, so it is written with a default or derived."""
    have, want = HOLDS.get(src), HOLDS.get(dst)
    if have is None or want is None:
        return []
    notes = []
    if "stuff" in want and "stuff" not in have:
        notes.append(f"{src} has no thing/stuff flag: every region is written as a thing (isStuff 0)")
    if "order" in want and "order" not in have:
        notes.append(ORDER_NOTES.get(src, f"{src} stores no occlusion order: the order written was derived from "
                     f"the visible and amodal masks (pairs the masks leave undecided follow the file's region "
                     f"order)"))
    if "names" in want and "names" not in have and "categories" in have:
        notes.append(f"{src} has no free-text names: category names are written as names")
    return notes
