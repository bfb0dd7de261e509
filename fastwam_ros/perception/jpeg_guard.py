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

Cost: about 30 NumPy/OpenCV calls on the four lines around each MCU-row boundary (reduced to block means first)
and a few pixels per candidate, independent of the JPEG's compressed size (figures: benchmarks/bench_jpeg_guard.py).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["seam_score"]

_RATIO_LO, _RATIO_HI = 0.5, 2.0  # a segment block agrees when its step is within [0.5, 2] x the reference step
_INSIDE_LO, _INSIDE_HI = 0.3, 1.5  # the vertical step at k, relative to the reference step
_WHOLE_MIN_ROWS, _WHOLE_MIN_COLS = 5, 20  # from this size (MCU rows, block columns) the whole-path share counts
_CLIP_LO, _CLIP_HI = 2.0, 253.0  # a block mean at/below (above) this on the shifted side is clipped, levels


def _excess(a: np.ndarray, b: np.ndarray, c: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Twice the step b→c beyond what the neighbouring steps a→b and c→e predict: 3(c - b) - (e - a), for 4
    consecutive lines as int16 (|result| <= 1020)."""
    return 3 * (c - b) - (e - a)


def _agrees(step: np.ndarray, after: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Blocks whose step matches ``delta``: 0.5..2 x delta, or of delta's sign with the shifted side clipped."""
    ratio = step / delta
    clipped = np.where(delta > 0, after >= _CLIP_HI, after <= _CLIP_LO)
    return ((ratio >= _RATIO_LO) & (ratio <= _RATIO_HI)) | (clipped & (ratio > 0.1))


def seam_score(rgb: np.ndarray, scale: int, sampling: tuple[int, int], step_levels: float,
               min_segment: int = 2) -> float:
    """Agreement in [0, 1] of the best DC-drift staircase in ``rgb`` (uint8 H×W×3, a JPEG decoded at 1/``scale``
    whose largest component sampling factors are ``sampling`` = (h, v)); 0.0 when the check does not apply.
    ``step_levels``: smallest drift step considered, in 0..255 levels."""
    if scale >= 8:
        return 0.0
    bh = 8 * max(1, sampling[1]) // scale  # MCU height, px (DCT scaling keeps the block grid at 8/scale px)
    bw = 8 // scale  # luma block width, px
    h, w = rgb.shape[:2]
    n_rows, n_cols = h // bh, w // bw
    if n_rows < 3 or n_cols < 2 * min_segment or bh < 2:
        return 0.0
    img = rgb[: n_rows * bh, : n_cols * bw]
    # excess step across each MCU-row boundary y = r * bh (r = 1 .. n_rows-1), averaged over each block's bw
    # columns: across[r - 1] = the boundary above MCU row r ([boundary, block column, channel])
    nb = n_rows - 1
    ys = np.arange(1, n_rows) * bh
    y4 = img[np.concatenate([ys - 2, ys - 1, ys, ys + 1])]  # one gather of whole lines
    if bw > 1:  # block means first (the excess step is linear; rounding to whole levels moves it by <= 1 level)
        y4 = cv2.resize(y4, (n_cols, 4 * nb), interpolation=cv2.INTER_AREA).reshape(4 * nb, n_cols, 3)
    y4 = y4.astype(np.int16)
    below = y4[2 * nb : 3 * nb]  # the first line of each MCU row 1 .. n_rows-1 (the shifted side of a drift)
    across = _excess(y4[:nb], y4[nb : 2 * nb], below, y4[3 * nb :]).astype(np.float32) / 2
    # candidates (row, k) for MCU rows 1 .. n_rows-2 (a boundary above and below) and block columns k with at
    # least min_segment blocks on each side: the top segment's first block steps by at least step_levels (the
    # reference delta) ...
    ks = np.arange(min_segment, n_cols - min_segment + 1)
    ref = across[:-1, ks[0] : ks[-1] + 1]
    flat = np.flatnonzero(np.abs(ref) >= step_levels)
    if len(flat) == 0:
        return 0.0
    cand = np.stack(np.unravel_index(flat, ref.shape), axis=1)  # [row - 1, k - min_segment, channel]
    # ... and the excess step at column x = k * bw inside the row, on two lines (the middles of the row's upper
    # and lower halves: a drift may start at a lower Y block of a 4:2:0 MCU), has the same sign and 0.3..1.5 x
    # delta (0.5 x when the drift starts at a lower or right Y block); read only at the candidates
    y = (cand[:, 0:1] + 1) * bh + np.array([bh // 4, 3 * bh // 4])  # [candidate, line]
    x = (cand[:, 1:2] + min_segment) * bw + np.arange(-2, 2)  # [candidate, pixel]
    px = img[y[:, :, None], x[:, None, :], cand[:, 2:3, None]].astype(np.int16)  # [candidate, line, pixel]
    inside = _excess(px[:, :, 0], px[:, :, 1], px[:, :, 2], px[:, :, 3]).sum(axis=1) / 4
    rel = inside / ref[cand[:, 0], cand[:, 1], cand[:, 2]]
    cand = cand[(rel >= _INSIDE_LO) & (rel <= _INSIDE_HI)]
    if len(cand) == 0:
        return 0.0
    row = cand[:, 0] + 1
    k = (cand[:, 1] + min_segment)[:, None]
    ch = cand[:, 2]
    delta = ref[cand[:, 0], cand[:, 1], ch][:, None]  # never 0: |delta| >= step_levels
    cols = np.arange(n_cols)[None, :]
    # the share of blocks agreeing with delta on the top segment (cols >= k) and the bottom one (cols < k)
    # (a block pushed into 0 or 255 by the drift agrees when its step has delta's sign: clipping shortens it)
    top_ok = (_agrees(across[row - 1, :, ch], below[row - 1, :, ch], delta) & (cols >= k)).sum(axis=1)
    bottom_ok = (_agrees(across[row, :, ch], below[row, :, ch], delta) & (cols < k)).sum(axis=1)
    whole = (top_ok + bottom_ok) / n_cols  # the share over the whole staircase
    top_ok, bottom_ok = top_ok / (n_cols - k[:, 0]), bottom_ok / k[:, 0]
    score = np.minimum(top_ok, bottom_ok)
    if n_rows >= _WHOLE_MIN_ROWS and n_cols >= _WHOLE_MIN_COLS:  # camera-sized: a short segment may be noisier
        score = np.where(score >= 0.5, whole, score)
    return float(score.max())
