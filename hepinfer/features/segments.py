"""Numpy operations on segmented arrays: entries grouped one segment (a jet) after the other, the
segments' bounds given by ``offsets`` (length segments + 1, starting at 0).

They reproduce awkward's ``argsort``, ``sum`` and ``argmax`` along axis 1 exactly (the same order,
the same float operations in the same sequence), without awkward's per-call overhead:

* :func:`sort_within` sorts each segment by an unsigned key, ties in their original order.  The
  segments are padded into rows of a power-of-two width and sorted row by row with ``np.sort``
  (numpy's SIMD sort is fast on rows that fit in cache, where one sort of the whole flat array
  leaves the cache: see the performance guide); segments already in order are not
  touched, so constituents stored hardest first cost one comparison each.
* :func:`descending_key` maps numbers to such keys in the order of ``ak.argsort(ascending=False)``:
  NaN first, then descending, -0.0 equal to 0.0.
* :func:`segment_sum` adds up sequentially in the values' own dtype, as ``ak.sum`` does (a float32
  sum is not the float64 sum rounded, nor numpy's pairwise sum).
* :func:`segment_argmax` is ``ak.argmax``: the first maximum; a NaN only when it comes first.
"""

from __future__ import annotations

import numpy as np

_SIGN32 = np.uint32(1 << 31)
_SIGN64 = np.uint64(1 << 63)


def descending_key(x: np.ndarray) -> np.ndarray:
    """Unsigned keys whose ascending order is ``x``'s order in ``ak.argsort(ascending=False)``."""
    if x.dtype.kind == "b":
        x = x.astype(np.uint8)
    if x.dtype.kind == "f":
        wide = x.dtype.itemsize > 4
        x = x.astype(np.float64 if wide else np.float32, copy=False)
        utype, sign = (np.uint64, _SIGN64) if wide else (np.uint32, _SIGN32)
        bits = (x + x.dtype.type(0.0)).view(utype)  # + 0.0 turns -0.0 into 0.0: they tie
        key = np.where(bits & sign, bits, ~(bits | sign))  # = ~(the ascending key)
        key[np.isnan(x)] = 0  # NaN first, as awkward sorts them; no number maps to 0
        return key
    if x.dtype.kind == "i":
        wide = x.dtype.itemsize > 4
        utype, sign = (np.uint64, _SIGN64) if wide else (np.uint32, _SIGN32)
        return ~(x.astype(np.int64 if wide else np.int32, copy=False).view(utype) ^ sign)
    if x.dtype.kind == "u":
        return ~x.astype(np.uint64 if x.dtype.itemsize > 4 else np.uint32, copy=False)
    raise TypeError(f"cannot sort by values of type {x.dtype}")


def sort_within(offsets: np.ndarray, key: np.ndarray) -> np.ndarray | None:
    """The permutation that sorts each segment by ``key`` (unsigned integers), ties in their
    original order: ``order[i]`` is the entry at sorted place ``i``.  None when every segment is
    already in order (the permutation is the identity)."""
    n = len(key)
    if n < 2:
        return None
    down = np.zeros(n, dtype=bool)  # down[i]: key[i + 1] < key[i] in one segment
    np.less(key[1:], key[:-1], out=down[:-1])
    ends = offsets[1:-1]
    down[ends[(ends > 0) & (ends < n)] - 1] = False  # pairs across two segments
    if not down.any():
        return None
    counts = np.diff(offsets)
    filled = np.flatnonzero(counts)
    unsorted = filled[np.logical_or.reduceat(down, offsets[filled])]
    width = np.left_shift(1, np.ceil(np.log2(counts[unsorted])).astype(np.int64))
    order = np.arange(n)
    for w in np.unique(width):
        _sort_rows(order, offsets, unsorted[width == w], int(w), key)
    return order


def _sort_rows(order, offsets, segments, width: int, key) -> None:
    """Sort ``segments`` (at most ``width`` entries each) as the rows of a padded array; writes
    their entries' places in ``order``."""
    counts = offsets[segments + 1] - offsets[segments]
    rows = np.repeat(np.arange(len(segments)), counts)
    cols = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    first = offsets[segments][rows]
    entries = first + cols
    values = key[entries]
    col_bits = max(width - 1, 1).bit_length()
    key_bits = int(values.max()).bit_length()
    valid = np.arange(width) < counts[:, None]
    if key_bits + col_bits <= 64:  # key and column in one number: np.sort, then the column back
        packed = np.uint32 if key_bits + col_bits <= 32 else np.uint64
        rows_of = np.full((len(segments), width), np.iinfo(packed).max, dtype=packed)
        combined = (values.astype(packed) << packed(col_bits)) | cols.astype(packed)
        rows_of.reshape(-1)[rows * width + cols] = combined
        rows_of.sort(axis=1)
        order[entries] = first + (rows_of[valid] & packed((1 << col_bits) - 1)).astype(np.int64)
    else:  # 64-bit keys: a stable sort of the keys alone; padding (all ones) goes last
        rows_of = np.full((len(segments), width), np.iinfo(values.dtype).max, dtype=values.dtype)
        rows_of.reshape(-1)[rows * width + cols] = values
        order[entries] = first + np.argsort(rows_of, axis=1, kind="stable")[valid]


def segment_sum(x: np.ndarray, segment: np.ndarray, n_segments: int) -> np.ndarray:
    """Per segment, the sum of its entries added one after the other from 0, in ``x``'s dtype
    (integers and booleans in 64 bits), as ``ak.sum(axis=1)`` adds them."""
    if x.dtype.kind in "biu":
        dtype = np.uint64 if x.dtype.kind == "u" else np.int64
    else:
        dtype = x.dtype
    out = np.zeros(n_segments, dtype=dtype)
    np.add.at(out, segment, x.astype(dtype, copy=False))  # entry after entry; one dtype: numpy's fast loop
    return out


def segment_argmax(x: np.ndarray, offsets: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """Per segment, the place (in ``x``) of ``ak.argmax``: the first entry greater than every one
    before it is kept, so a NaN wins only as the first entry; -1 for an empty segment."""
    counts = np.diff(offsets)
    out = np.full(len(counts), -1, dtype=np.int64)
    filled = np.flatnonzero(counts)
    if not len(filled):
        return out
    starts = offsets[:-1][filled]
    top = np.full(len(counts), np.nan if x.dtype.kind == "f" else 0, dtype=x.dtype)
    top[filled] = np.fmax.reduceat(x, starts)  # NaN only where all are NaN
    hits = np.flatnonzero(x == top[segment])
    first_hit = np.ones(len(hits), dtype=bool)
    first_hit[1:] = segment[hits[1:]] != segment[hits[:-1]]
    out[segment[hits[first_hit]]] = hits[first_hit]
    if x.dtype.kind == "f":
        nan_first = filled[np.isnan(x[starts])]
        out[nan_first] = offsets[nan_first]
    return out
