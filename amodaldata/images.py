"""Image bytes checked against their annotation: they must decode (PIL, every byte read) and have the annotated
size. Every place that reads or embeds images asks here (convert to shards, validate, show, the overlay
generator), so a corrupt, truncated or wrong-size image is refused the same way everywhere.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image

from .errors import AnnotationError, ImageError

#: Largest image side accepted (JPEG's limit): a larger one is refused, not allocated.
MAX_SIDE = 65535
#: What PIL raises on bytes it cannot decode (truncated data surfaces as OSError, odd headers as the others).
DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def check_size(height: Any, width: Any) -> None:
    """Refuse an image size that is not two ints from 1 to :data:`MAX_SIDE` (:class:`AnnotationError`)."""
    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise AnnotationError(f"image {name} must be an int, got {type(value).__name__} {value!r}")
        if not 0 < value <= MAX_SIDE:
            raise AnnotationError(f"image {name} {value} is outside 1..{MAX_SIDE}")


def image_problem(data: bytes, height: int | None = None, width: int | None = None) -> str | None:
    """What is wrong with image ``data`` (None when nothing): it does not decode, or it is not
    ``width`` x ``height`` (sizes None: not checked). JPEGs are decoded with the scaled-down IDCT (every
    coefficient is still read, so truncation is found, at a fraction of the cost)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            size = im.size
            if im.format == "JPEG":
                im.draft(im.mode, (max(1, size[0] // 8), max(1, size[1] // 8)))
            im.load()
    except Image.UnidentifiedImageError:
        return "does not decode: not in an image format PIL reads"
    except DECODE_ERRORS as exc:
        return f"does not decode: {exc}"
    if height is not None and width is not None and size != (width, height):
        return f"is {size[0]} x {size[1]} (w x h), the annotation says {width} x {height}"
    return None


def check_image(data: bytes, height: int | None, width: int | None, *, file: str | Path | None = None,
                image_id: Any = None, annotation_id: Any = None) -> bytes:
    """``data`` when it decodes and has the annotated size, else :class:`ImageError` naming the image file
    (``file``: its path or name), the image id and the annotation."""
    problem = image_problem(data, height, width)
    if problem is not None:
        what = f"image {file}" if file is not None else "the embedded image"
        raise ImageError(f"{what} {problem}", image_id=image_id, annotation_id=annotation_id)
    return data


def decode_rgb(data: bytes, height: int, width: int, *, file: str | Path | None = None, image_id: Any = None,
               annotation_id: Any = None) -> Image.Image:
    """The image as an RGB PIL image, checked as :func:`check_image` does."""
    check_image(data, height, width, file=file, image_id=image_id, annotation_id=annotation_id)
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")
