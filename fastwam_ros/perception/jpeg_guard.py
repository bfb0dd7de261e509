"""A no-reference check of a decoded JPEG for the seam a corrupted entropy-coded segment leaves.

JPEG carries no checksum. A flipped bit that keeps the Huffman stream decodable (a changed magnitude bit, or a
desynchronisation that happens to resynchronise before the end of the scan) passes libjpeg's strict mode and
decodes to a different picture. The common, large form of that damage is **DC drift**: DC coefficients are coded
as differences from the previous block's, so one wrong DC difference shifts the brightness/colour of *every later
block of the scan* by the same amount. In the picture that is an offset of the raster *suffix* (all MCUs from the
damaged one on), whose boundary is a staircase on the MCU grid: the top of MCU row ``R`` from column ``k`` on, a
vertical step at column ``k`` inside row ``R``, and the bottom of row ``R`` left of ``k``, all with the *same*
step ``delta``. Natural edges are rarely a staircase on the block grid with one constant step on all three parts.

:func:`seam_score` measures that: for each vertical block-column boundary step of at least ``step_levels``
inside an MCU row (the candidate ``k``; the step is the *excess* over the linear prediction from the neighbouring
pixels, so smooth gradients score 0), the fraction of the blocks on the top segment and on the bottom segment
whose excess step across the MCU-row boundary is between half and twice the same ``delta``; the score is the
smaller fraction, maximised over candidates and RGB channels. A frame is refused (``corrupt_jpeg_seam``) when the
score reaches ``agreement``.

Limits, stated plainly (figures: benchmarks/fuzz_perception.py, README "Reliability"):

* the check needs blocks of at least 2 px: it is skipped for decodes at 1/8 scale (one pixel per block, where a
  grid-aligned natural edge and a drift look the same) and for images under 3 MCU rows or 4 block columns;
* a drift that starts within the first or last ``min_segment`` block columns of an MCU row, or in the first or
  last MCU row, is a full-width grid-aligned step and cannot be told from a real edge: not refused;
* a flip that only changes AC coefficients (one block's texture), garbage that ends without a net DC drift, or a
  drift smaller than ``step_levels`` is not refused either.

Cost: tens of µs on a 240×320 decode (a few row/column gathers and one vectorised test per candidate).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["seam_score"]

_RATIO_LO, _RATIO_HI = 0.5, 2.0  # a segment block agrees when its step is within [0.5, 2] x the reference step
_INSIDE_LO, _INSIDE_HI = 0.3, 1.5  # the vertical step at k, relative to the reference step
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

    def lines(first: int, count: int, step: int, axis: int) -> np.ndarray:  # strided slices: views, no gather
        sl = slice(first, first + step * (count - 1) + 1, step)
        return (img[sl] if axis == 0 else img[:, sl]).astype(np.int16)

    # excess step across each MCU-row boundary y = r * bh (r = 1 .. n_rows-1), averaged over each block's bw
    # columns: across[r - 1] = the boundary above MCU row r ([boundary, block column, channel])
    nb = n_rows - 1
    below = lines(bh, nb, bh, 0)  # the first line of each MCU row 1 .. n_rows-1 (the shifted side of a drift)
    across = _excess(lines(bh - 2, nb, bh, 0), lines(bh - 1, nb, bh, 0), below, lines(bh + 1, nb, bh, 0))
    if bw > 1:  # exact block means (integer factor)
        across = cv2.resize(across.astype(np.float32), (n_cols, nb), interpolation=cv2.INTER_AREA)
        below = cv2.resize(below.astype(np.float32), (n_cols, nb), interpolation=cv2.INTER_AREA)
    across = across.reshape(nb, n_cols, 3).astype(np.float32) / 2
    below = below.reshape(nb, n_cols, 3)
    # the excess step at each candidate block-column boundary x = k * bw in MCU rows 1 .. n_rows-2 (a boundary
    # above and below), on two lines per MCU row (the middles of its upper and lower halves: a drift may start
    # at a lower Y block of a 4:2:0 MCU), averaged: inside[row - 1, candidate, channel]
    ks = np.arange(min_segment, n_cols - min_segment + 1)  # candidate k: at least min_segment blocks each side
    r = np.arange(1, n_rows - 1) * bh
    mid = img[np.concatenate([r + bh // 4, r + 3 * bh // 4])].astype(np.int16)
    x0, nk = int(ks[0]) * bw, len(ks)
    col = [mid[:, x0 + o : x0 + o + bw * (nk - 1) + 1 : bw] for o in (-2, -1, 0, 1)]  # strided views
    inside = _excess(*col)
    inside = (inside[: n_rows - 2] + inside[n_rows - 2 :]).astype(np.float32) / 4
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
    top_ok, bottom_ok = top_ok / (n_cols - k[:, 0]), bottom_ok / k[:, 0]
    return float(np.minimum(top_ok, bottom_ok).max())
