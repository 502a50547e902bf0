"""A fast exact PNG encoder for generated scenes (the masks' COCO RLE text is written by
:func:`amodaldata.rle.strings`).

Deterministic and verified against PIL's decoder in the tests. It exists because PIL's PNG writer spends
~0.4 ms per image in fixed overhead and adaptive row filtering, more than a whole synthetic scene.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def encode_png(image: np.ndarray, level: int = 1) -> bytes:
    """PNG bytes of a bool ``(H, W)`` image (1-bit, True = white), a uint8 ``(H, W)`` gray image or a uint8
    ``(H, W, 3)`` RGB image; every row uses filter type 0 (None), the data is zlib-compressed at ``level``.

    Gray and 1-bit pictures of flat shapes are compressed with zlib's run-length strategy: on the shapes
    scenes it is faster than level 1 and smaller than it (0.10 against 0.14 ms, 2.6 against 2.8 kB per 1-bit
    256x256 image); for RGB, whose interleaved channels break the runs, the default strategy stays."""
    image = np.asarray(image)
    if image.dtype == bool and image.ndim == 2:
        depth, colour, rows = 1, 0, np.packbits(image, axis=1)
    elif image.dtype == np.uint8 and image.ndim == 2:
        depth, colour, rows = 8, 0, image
    elif image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        depth, colour, rows = 8, 2, image.reshape(image.shape[0], -1)
    else:
        raise ValueError(f"encode_png takes a bool or uint8 (H, W) or uint8 (H, W, 3) array, "
                         f"got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    raw = np.zeros((height, rows.shape[1] + 1), dtype=np.uint8)
    raw[:, 1:] = rows
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    deflate = zlib.compressobj(level, zlib.DEFLATED, 15, 9, zlib.Z_RLE if colour == 0 else zlib.Z_DEFAULT_STRATEGY)
    data = deflate.compress(raw.tobytes()) + deflate.flush()
    return _PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")
