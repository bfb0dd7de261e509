"""A no-reference check of a decoded JPEG for the seam a corrupted entropy-coded segment leaves.

JPEG carries no checksum. A flipped bit that keeps the Huffman stream decodable (a changed magnitude bit, or a
desynchronisation that happens to resynchronise before the end of the scan) passes libjpeg's strict mode and
decodes to a different picture. The common, large form of that damage is **DC drift**: DC coefficients are coded
as differences from the previous block's, so one wrong DC difference shifts the brightness/colour of *every later
block of the scan* by the same amount. In the picture that is an offset of the raster *suffix* (all MCUs from the
damaged one on), whose boundary is a staircase on the MCU grid: the top of MCU row ``R`` from column ``k`` on, a
vertical step at column ``k`` inside row ``R``, and the bottom of row ``R`` left of ``k``, all with the *same*
step ``delta``. Natural edges are rarely a staircase on the block grid with one constant step on all three parts.

:func:`seam_score` measures that. Candidates: an MCU row ``R`` (with a boundary above and below) and a luma
block column ``k`` where the step across the boundary above row ``R`` at block ``k`` (the reference ``delta``) is
at least ``step_levels`` and the step at column ``k`` inside the row has the same sign and 0.3-1.5 x its size
(0.5 x when the drift starts at a lower Y block of a 4:2:0 MCU). Every step is the *excess* over the linear
prediction from the neighbouring pixels, so smooth gradients give 0. For each candidate, the share of blocks on
the top segment (boundary above ``R``, columns >= ``k``) and on the bottom segment (boundary below ``R``, columns
< ``k``) whose step is 0.5-2 x ``delta`` (or of its sign where the drift pushed the block into 0 or 255); the
score is the smaller share -- or, on images of at least 5 MCU rows and 20 block columns where both shares reach
0.5, the share over the whole staircase -- maximised over candidates and RGB channels. A frame is refused
(``corrupt_jpeg_seam``) when the score reaches the agreement threshold (PerceptionConfig
``jpeg_guard_agreement``, 0.75; the highest score of a good frame measured is 0.60 (a synthetic pattern), of
a camera or simulator frame 0.57).

Limits, stated plainly (figures: benchmarks/bench_jpeg_guard.py, benchmarks/fuzz_perception.py, README
"Perception reliability"):

* the check needs blocks of at least 2 px: it is skipped for decodes at 1/8 scale (one pixel per block, where a
  grid-aligned natural edge and a drift look the same) and for images under 3 MCU rows or 4 block columns;
* a drift that starts within the first or last ``min_segment`` block columns of an MCU row, or in the first or
  last MCU row, is (close to) a full-width grid-aligned step and cannot be told from a real edge: not refused;
  nor is a drift whose seam lies along a real edge of the scene;
* a flip that only changes AC coefficients (one block's texture), garbage that ends without a net DC drift, or a
  drift smaller than ``step_levels`` is not refused either;
* a scene whose edges trace exactly a drift's staircase on the MCU grid with one constant step *is* refused
  (never seen in camera images; benchmarks/bench_jpeg_guard.py lists such a picture apart).

Cost: about 30 NumPy calls per frame, none per row or candidate: the four lines around each MCU-row boundary are
gathered in one indexing and reduced to whole-level block means (as ``cv2.resize`` INTER_AREA rounds them: half
to even), the excess steps are one matrix product, and every index that depends only on the picture's geometry
(lines, candidate positions, pixel offsets, segment masks) is computed once per geometry and cached. Independent
of the JPEG's compressed size (figures: benchmarks/bench_jpeg_guard.py).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

__all__ = ["seam_score"]

_RATIO_LO, _RATIO_HI = 0.5, 2.0  # a segment block agrees when its step is within [0.5, 2] x the reference step
_INSIDE_LO, _INSIDE_HI = 0.3, 1.5  # the vertical step at k, relative to the reference step
_WHOLE_MIN_ROWS, _WHOLE_MIN_COLS = 5, 20  # from this size (MCU rows, block columns) the whole-path share counts
_CLIP_LO, _CLIP_HI = 2.0, 253.0  # a block mean at/below (above) this on the shifted side is clipped, levels
# the excess step b->c beyond what the neighbouring steps a->b and c->e predict, halved: (3(c - b) - (e - a)) / 2
# over 4 consecutive lines (a, b, c, e); exact in float32 for 0..255 inputs
_ACROSS_W = np.array([[0.5, -1.5, 1.5, -0.5]], np.float32)
# the same excess (not halved) on the 2 lines x 4 pixels read at a candidate, summed over the 2 lines and / 4
_INSIDE_W = np.tile(np.array([1.0, -3.0, 3.0, -1.0]), 2) / 4
# multiply-adds per block-mean matrix product: from ~1M OpenBLAS starts threads, which on a loaded machine cost
# milliseconds (measured on 2 busy cores: 24-47 ms for a 1920-wide frame at scale 1 in 2^20-sized products,
# 0.5 ms in 2^19-sized ones; one product for a 480x640 camera at scales 1/2 and 1/4)
_BLAS_MACS = 400_000
_TOP_BOTTOM = np.array([0, 1])  # the boundaries above and below an MCU row


class _Plan(NamedTuple):
    """What depends only on the geometry; the ``*_at`` tables are indexed by a position ``f`` in the grid of
    reference steps [boundary above MCU row 1 .. n_rows-2, block column, channel] (small integer types: these
    tables are read right after a decode has filled the caches)."""

    nb: int  # MCU-row boundaries (n_rows - 1)
    n_cols: int  # block columns
    width: int  # n_cols * block width, px
    k0: int  # first candidate block column (min_segment)
    lines: np.ndarray  # [4 nb] image rows: 2 above and 2 below each boundary, line-major
    block_sum: np.ndarray  # [block width x 3, 3] float32: a block's pixels -> its channel means (1 / block width)
    chunk: int  # blocks per block-mean matrix product
    pixel_at: np.ndarray  # [f] -> flat index in the H x W x 3 picture of (MCU row's top line, x = k * bw, channel)
    offsets: np.ndarray  # [8] flat offsets from there of the 2 lines x 4 pixels read at k
    row_at: np.ndarray  # [f] -> the boundary above the MCU row (the one below is the next)
    ch_at: np.ndarray  # [f] -> channel
    k_at: np.ndarray  # [f] -> block column k
    segment: np.ndarray  # [k, 2, n_cols] -> the top (columns >= k) and bottom (columns < k) segment masks


@functools.lru_cache(maxsize=8)
def _plan(h: int, w: int, scale: int, v_sampling: int, min_segment: int) -> _Plan | None:
    bh = 8 * v_sampling // scale  # MCU height, px (DCT scaling keeps the block grid at 8/scale px)
    bw = 8 // scale  # luma block width, px
    n_rows, n_cols = h // bh, w // bw
    if n_rows < 3 or n_cols < 2 * min_segment or bh < 2 or bw < 1:
        return None
    nb = n_rows - 1
    ys = np.arange(1, n_rows) * bh
    r, k, ch = np.unravel_index(np.arange((nb - 1) * n_cols * 3), (nb - 1, n_cols, 3))
    # the 2 lines (the middles of the MCU row's upper and lower halves) x 4 pixels (x = k * bw - 2 .. + 1)
    around = (np.array([bh // 4, 3 * bh // 4])[:, None] * w + np.arange(-2, 2)[None, :]) * 3
    top = np.arange(n_cols)[None, :] >= np.arange(n_cols + 1)[:, None]
    return _Plan(nb, n_cols, n_cols * bw, min_segment, np.concatenate([ys - 2, ys - 1, ys, ys + 1]),
                 np.tile(np.eye(3, dtype=np.float32), (bw, 1)) / bw, max(64, _BLAS_MACS // (9 * bw)),
                 (((r + 1) * bh * w + k * bw) * 3 + ch).astype(np.int64 if h * w * 3 >= 2**31 else np.int32),
                 around.ravel(), r.astype(np.int32), ch.astype(np.int8), k.astype(np.int32),
                 np.stack([top, ~top], axis=1))


def seam_score(rgb: np.ndarray, scale: int, sampling: tuple[int, int], step_levels: float,
               min_segment: int = 2) -> float:
    """Agreement in [0, 1] of the best DC-drift staircase in ``rgb`` (uint8 H×W×3, a JPEG decoded at 1/``scale``
    whose largest component sampling factors are ``sampling`` = (h, v)); 0.0 when the check does not apply.
    ``step_levels``: smallest drift step considered, in 0..255 levels."""
    if scale >= 8:
        return 0.0
    p = _plan(rgb.shape[0], rgb.shape[1], scale, max(1, sampling[1]), min_segment)
    if p is None:
        return 0.0
    rgb = np.ascontiguousarray(rgb)
    nb, n_cols = p.nb, p.n_cols
    # the 4 lines around each MCU-row boundary as whole-level block means [4 nb x block column, channel]
    # (line-major: above-2, above-1, below, below+1): sums by a matrix product (exact in float32), rounded half
    # to even as cv2.resize INTER_AREA rounds them
    blocks = rgb[p.lines, : p.width].reshape(4 * nb * n_cols, -1).astype(np.float32)
    means = np.empty((len(blocks), 3), np.float32)
    for i in range(0, len(blocks), p.chunk):  # BLAS calls kept under OpenBLAS' threading size (see _BLAS_MACS)
        np.matmul(blocks[i : i + p.chunk], p.block_sum, out=means[i : i + p.chunk])
    np.rint(means, out=means)
    # across[r] = the excess step across the boundary above MCU row r + 1 ([boundary, block column, channel])
    across = (_ACROSS_W @ means.reshape(4, -1)).reshape(nb, n_cols, 3)
    # candidates: MCU rows 1 .. n_rows-2 (a boundary above and below) and block columns k with min_segment blocks
    # on each side where the top segment's first block steps by at least step_levels (the reference delta) ...
    ref = np.abs(across[:-1])
    ref[:, : p.k0] = 0  # (step_levels >= 1: never a candidate)
    ref[:, n_cols - p.k0 + 1 :] = 0
    flat = np.flatnonzero(ref >= step_levels)  # flat positions in across[:-1], so in across
    if not flat.size:
        return 0.0
    delta = across.reshape(-1)[flat]
    # ... and the excess step at x = k * bw inside the row, on two lines (the middles of the row's upper and lower
    # halves: a drift may start at a lower Y block of a 4:2:0 MCU), has the same sign and 0.3..1.5 x delta
    px = rgb.reshape(-1)[p.pixel_at[flat][:, None] + p.offsets]  # [candidate, line x pixel]
    rel = (px @ _INSIDE_W) / delta
    keep = (rel >= _INSIDE_LO) & (rel <= _INSIDE_HI)
    flat, delta = flat[keep], delta[keep, None, None]
    if not flat.size:
        return 0.0
    # the blocks agreeing with delta on the top segment (boundary above the row, cols >= k) and the bottom one
    # (boundary below, cols < k): 0.5..2 x delta, or of delta's sign where the drift pushed the shifted side's
    # block mean into 0 or 255 (clipping shortens the step)
    rows, ch = p.row_at[flat][:, None] + _TOP_BOTTOM, p.ch_at[flat][:, None]
    ratio = across[rows, :, ch] / delta  # [candidate, top/bottom, block column]
    after = means.reshape(4, nb, n_cols, 3)[2][rows, :, ch]  # the first line below each boundary
    clipped = np.where(delta > 0, after >= _CLIP_HI, after <= _CLIP_LO)
    agree = ((ratio >= _RATIO_LO) & (ratio <= _RATIO_HI)) | (clipped & (ratio > 0.1))
    k = p.k_at[flat]
    agree &= p.segment[k]
    top_ok, bottom_ok = agree.sum(axis=2).T
    score = np.minimum(top_ok / (n_cols - k), bottom_ok / k)
    if nb + 1 >= _WHOLE_MIN_ROWS and n_cols >= _WHOLE_MIN_COLS:  # camera-sized: a short segment may be noisier
        score = np.where(score >= 0.5, (top_ok + bottom_ok) / n_cols, score)  # the share over the whole staircase
    return float(score.max())
