"""Fast exact encoders for generated scenes: PNG images and COCO compressed RLE of every label of a label map.

Both are deterministic and verified against the reference decoders in the tests (PIL for PNG, pycocotools
for RLE). They exist because the generic paths cost more than a whole synthetic scene: PIL's PNG writer
spends ~0.4 ms per image in fixed overhead and adaptive row filtering, and ``pycocotools.mask.encode`` needs
one full-size Fortran bitmap per mask.
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
    ``(H, W, 3)`` RGB image; every row uses filter type 0 (None), the data is zlib-compressed at ``level``."""
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
    return (_PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw.tobytes(), level))
            + _chunk(b"IEND", b""))


def label_rles(labels_colmajor: np.ndarray, height: int, width: int, values: np.ndarray) -> list[str]:
    """COCO compressed RLE ``counts`` strings of the masks ``labels == v`` for each v of ``values``.

    ``labels_colmajor`` is the label map flattened in column-major order (``labels.T.ravel()``, the order
    COCO RLE runs in), length ``height * width``. One pass finds every run of the map; each label's runs
    become its counts (zeros first) and all counts are written in pycocotools' 6-bit text code at once (the
    ``rleToString`` scheme: from the fourth count on, the difference to the count two places back; five bits
    per character, a continuation bit, offset 48).
    """
    n_pix = height * width
    seq = np.asarray(labels_colmajor)
    starts = np.concatenate(([0], np.flatnonzero(seq[1:] != seq[:-1]) + 1))
    ends = np.append(starts[1:], n_pix)
    run_label = seq[starts]
    values = np.asarray(values)
    narrow = np.uint8 if run_label.max(initial=0) < 256 else np.uint16 if run_label.max(initial=0) < 65536 else None
    order = np.argsort(run_label.astype(narrow) if narrow else run_label, kind="stable")   # radix sort when narrow
    sorted_label = run_label[order]
    lo = np.searchsorted(sorted_label, values, side="left")
    hi = np.searchsorted(sorted_label, values, side="right")
    n_runs = hi - lo
    # counts of label j: [gap_0, len_0, gap_1, len_1, ..., gap_last] -> 2 * runs + 1 counts
    n_counts = 2 * n_runs + 1
    offsets = np.concatenate(([0], np.cumsum(n_counts)))
    counts = np.zeros(offsets[-1], dtype=np.int64)
    first = np.cumsum(n_runs) - n_runs
    mask_of_run = np.repeat(np.arange(values.size), n_runs)
    rank = np.arange(n_runs.sum()) - first[mask_of_run]
    run_idx = order[lo[mask_of_run] + rank]
    run_start, run_end = starts[run_idx], ends[run_idx]
    prev_end = np.where(rank > 0, np.roll(run_end, 1), 0)
    base = offsets[mask_of_run] + 2 * rank
    counts[base] = run_start - prev_end
    counts[base + 1] = run_end - run_start
    last_end = np.zeros(values.size, dtype=np.int64)
    has = n_runs > 0
    last_end[has] = run_end[np.cumsum(n_runs)[has] - 1]
    counts[offsets[1:] - 1] = n_pix - last_end
    # pycocotools stores a leading zero-run of length 0 and never an empty trailing run of zeros
    # except when the mask ends with ones: drop a final count of 0 unless it is the only one.
    keep = np.ones(counts.size, dtype=bool)
    trailing = offsets[1:] - 1
    drop = (counts[trailing] == 0) & (n_counts > 1)
    keep[trailing[drop]] = False
    counts, owner = counts[keep], np.repeat(np.arange(values.size), n_counts)[keep]
    local = np.arange(counts.size) - np.searchsorted(owner, owner, side="left")
    x = counts.copy()
    back2 = local > 2
    x[back2] -= counts[np.flatnonzero(back2) - 2]
    width = -(-(int(n_pix).bit_length() + 1) // 5) + 1     # 5 bits per character, plus the sign
    chars = np.zeros((x.size, width), dtype=np.uint8)
    used = np.zeros((x.size, width), dtype=bool)
    n_chars = np.zeros(x.size, dtype=np.int64)
    active = np.ones(x.size, dtype=bool)
    for k in range(width):
        c = x & 0x1F
        x = x >> 5
        more = x != -((c >> 4) & 1)                         # 0x10 set: a negative tail ends at -1, else at 0
        chars[:, k] = (c | (more << 5)) + 48
        used[:, k] = active
        n_chars += active
        active &= more
        if not active.any():
            break
    text = chars[used].tobytes().decode("ascii")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(owner, weights=n_chars, minlength=values.size))))
    bounds = bounds.astype(np.int64)
    return [text[bounds[j]:bounds[j + 1]] for j in range(values.size)]
