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

Cost: about 35 NumPy/OpenCV calls on a few lines of the image (the lines around each MCU-row boundary and two
lines per MCU row), independent of the JPEG's compressed size.
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
    y4 = img[np.concatenate([ys - 2, ys - 1, ys, ys + 1])].astype(np.int16)  # one gather of whole lines
    below = y4[2 * nb : 3 * nb]  # the first line of each MCU row 1 .. n_rows-1 (the shifted side of a drift)
    across = _excess(y4[:nb], y4[nb : 2 * nb], below, y4[3 * nb :])
    if bw > 1:  # exact block means (integer factor), both at once
        both = cv2.resize(np.concatenate([across, below], axis=2).astype(np.float32), (n_cols, nb),
                          interpolation=cv2.INTER_AREA).reshape(nb, n_cols, 6)
        across, below = both[:, :, :3], both[:, :, 3:]
    across = across.reshape(nb, n_cols, 3).astype(np.float32) / 2
    below = below.reshape(nb, n_cols, 3)
    # the excess step at each candidate block-column boundary x = k * bw in MCU rows 1 .. n_rows-2 (a boundary
    # above and below), on two lines per MCU row (the middles of its upper and lower halves: a drift may start
    # at a lower Y block of a 4:2:0 MCU), averaged: inside[row - 1, candidate, channel]
    ks = np.arange(min_segment, n_cols - min_segment + 1)  # candidate k: at least min_segment blocks each side
    r = np.arange(1, n_rows - 1) * bh
    mid = img[np.concatenate([r + bh // 4, r + 3 * bh // 4])].reshape(2 * len(r), -1).astype(np.int16)
    # the excess step at every column boundary x = 2 .. width-2 on these lines (flat RGB: a pixel is 3 values)
    # -- contiguous arithmetic, then every bw-th column is taken (cheaper than gathering 4 strided columns)
    step_x = (3 * (mid[:, 6:-3] - mid[:, 3:-6]) - (mid[:, 9:] - mid[:, :-9])).reshape(2 * len(r), -1, 3)
    x0 = int(ks[0]) * bw - 2
    inside = step_x[:, x0 : x0 + bw * (len(ks) - 1) + 1 : bw]
    inside = (inside[: len(r)] + inside[len(r) :]).astype(np.float32) / 4
    # candidates (row, k): the top segment's first block steps by at least step_levels (the reference delta)
    # and the vertical step at k inside the row has the same sign, 0.3..1.5 x delta (0.5 x when the drift
    # starts at a lower or right Y block of a 4:2:0 MCU)
    ref = across[:-1, ks[0] : ks[-1] + 1]
    rel = inside / np.where(ref == 0, 1, ref)
    cand = np.argwhere((np.abs(ref) >= step_levels) & (rel >= _INSIDE_LO) & (rel <= _INSIDE_HI))
    if len(cand) == 0:
        return 0.0
    row = cand[:, 0] + 1
    k = (cand[:, 1] + min_segment)[:, None]
    ch = cand[:, 2]
    delta = ref[cand[:, 0], cand[:, 1], ch][:, None]
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
