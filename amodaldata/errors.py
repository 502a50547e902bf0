"""Typed errors for bad input, and the ``--on-error fail|skip`` policy.

Every error names where the problem is: the file, the image id and the annotation or region id, so that
a one-line message is enough to find the offending record (datumaro-style typed import errors).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

OnError = Literal["fail", "skip"]


class AmodalDataError(Exception):
    """Base class of every error amodaldata raises on bad input."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        image_id: Any = None,
        annotation_id: Any = None,
        region_id: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.image_id = image_id
        self.annotation_id = annotation_id
        self.region_id = region_id

    def located(self, **where: Any) -> "AmodalDataError":
        """Fill in location fields that are still unknown and return self (for re-raising upstream)."""
        for key, value in where.items():
            if getattr(self, key) is None and value is not None:
                setattr(self, key, value)
        return self

    def where(self) -> str:
        parts = []
        if self.file is not None:
            parts.append(str(self.file))
        if self.image_id is not None:
            parts.append(f"image {self.image_id}")
        if self.annotation_id is not None:
            parts.append(f"annotation {self.annotation_id}")
        if self.region_id is not None:
            parts.append(f"region {self.region_id}")
        return ", ".join(parts)

    def __str__(self) -> str:
        where = self.where()
        return f"{where}: {self.message}" if where else self.message


class AnnotationError(AmodalDataError):
    """A record is malformed: unreadable JSON, a missing or mistyped field."""


class GeometryError(AnnotationError):
    """A mask cannot be built: a polygon with fewer than 3 points, NaN coordinates, an RLE of the wrong size."""


class DepthCycleError(AnnotationError):
    """The occlusion order has a cycle, so no front-to-back order exists."""

    def __init__(self, cycle: list[Any], **where: Any) -> None:
        chain = " -> ".join(str(r) for r in [*cycle, cycle[0]])
        super().__init__(f"depth order has a cycle through regions {chain}", **where)
        self.cycle = cycle


class MissingImageError(AmodalDataError):
    """An image file named by the annotations is not on disk."""


class ImageError(AmodalDataError):
    """An image does not decode (corrupt, truncated) or is not the size its annotation says."""


class FormatError(AmodalDataError):
    """A file is not in the expected format, or its format cannot be told."""


class EmptyOutputError(AmodalDataError):
    """A conversion would write no region at all (e.g. every name lacks a category of the target)."""


@dataclass
class ErrorPolicy:
    """What a reader does with a bad item: ``fail`` raises at once, ``skip`` drops the item and records why.

    Nothing is dropped silently: :meth:`summary` lists every skip, grouped by kind.
    """

    on_error: OnError = "fail"
    skipped: list[AmodalDataError] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.on_error not in ("fail", "skip"):
            raise ValueError(f"on_error must be 'fail' or 'skip', not {self.on_error!r}")

    def handle(self, error: AmodalDataError) -> None:
        """Raise ``error`` under ``fail``; record it under ``skip``."""
        if self.on_error == "fail":
            raise error
        self.skipped.append(error)

    def summary(self) -> str:
        """A human-readable report of every skipped item ('' when nothing was skipped)."""
        if not self.skipped:
            return ""
        kinds = Counter(type(e).__name__ for e in self.skipped)
        head = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        lines = [f"skipped {len(self.skipped)} item(s) ({head}):"]
        lines += [f"  {e}" for e in self.skipped]
        return "\n".join(lines)
