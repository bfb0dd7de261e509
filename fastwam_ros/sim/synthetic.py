"""A small numpy + OpenCV renderer for the kinematic backend (no OpenGL needed).

Draws the table, the towel and both arms (links as thick segments, fingers that open and close) through the
same pinhole cameras as the MuJoCo scene, so the images change with the joint state and carry the information
a policy needs (where the towel is, where the grippers are, whether they are closed). It is a cartoon, not a
photo-realistic render: a policy trained on one backend's images should not be expected to work on the other's.
"""

from __future__ import annotations

import cv2
import numpy as np

from . import kinematics as K

TABLE_HALF_EXTENT_M = (0.6, 0.375)  # x, y half sizes of the table top (centred at y = 0.6)
TABLE_CENTRE_M = (0.0, 0.6)
BACKGROUND_RGB = (18, 20, 26)
TABLE_RGB = (62, 62, 62)
TOWEL_RGB = (60, 135, 230)
TOWEL_FOLD_RGB = (40, 95, 180)
ARM_RGB = {"left": (196, 196, 200), "right": (205, 200, 190)}
FINGER_RGB = (240, 240, 240)
LINK_RADIUS_M = 0.028
FINGER_RADIUS_M = 0.008
NEAR_M = 0.02


class PinholeCamera:
    """World-to-pixel projection; MuJoCo convention (looks along -z of its frame, +y up, vertical fovy)."""

    def __init__(self, eye: np.ndarray, cam_to_world: np.ndarray, fovy_deg: float, height: int, width: int):
        self.eye = np.asarray(eye, float)
        self.R = np.asarray(cam_to_world, float)
        self.h, self.w = int(height), int(width)
        self.f = 0.5 * self.h / np.tan(np.deg2rad(fovy_deg) / 2.0)

    def to_camera(self, pts_world: np.ndarray) -> np.ndarray:
        return (np.atleast_2d(pts_world) - self.eye) @ self.R  # rows: camera-frame coordinates

    def project(self, pts_cam: np.ndarray) -> np.ndarray:
        """Camera-frame points (depth = -z > 0) -> pixel (u, v) float."""
        depth = -pts_cam[:, 2]
        u = 0.5 * self.w + self.f * pts_cam[:, 0] / depth
        v = 0.5 * self.h - self.f * pts_cam[:, 1] / depth
        return np.stack([u, v], axis=1)


def _clip_polygon_near(pts_cam: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman clip of a camera-frame polygon against the near plane (depth >= NEAR_M)."""
    out = []
    n = len(pts_cam)
    for i in range(n):
        a, b = pts_cam[i], pts_cam[(i + 1) % n]
        da, db = -a[2] - NEAR_M, -b[2] - NEAR_M
        if da >= 0:
            out.append(a)
        if (da >= 0) != (db >= 0):
            t = da / (da - db)
            out.append(a + t * (b - a))
    return np.array(out) if out else np.zeros((0, 3))


def _fill_polygon(img: np.ndarray, cam: PinholeCamera, pts_world: np.ndarray, rgb) -> None:
    pc = _clip_polygon_near(cam.to_camera(pts_world))
    if len(pc) < 3:
        return
    uv = np.clip(cam.project(pc), -1e4, 1e4)
    cv2.fillPoly(img, [np.round(uv * 16).astype(np.int32)], rgb, lineType=cv2.LINE_AA, shift=4)


def _segments(q14: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, float, tuple]]:
    segs = []
    for s, side in enumerate(("left", "right")):
        q7 = q14[7 * s : 7 * s + 7]
        pts = K.arm_polyline(side, q7)
        for a, b in zip(pts[:-1], pts[1:]):
            if np.linalg.norm(b - a) > 1e-6:
                segs.append((a, b, LINK_RADIUS_M, ARM_RGB[side]))
        f = K.arm_frames(side, q7)
        origin = f["finger_origin"][0]
        R = f["finger_origin"][1]
        half = K.gripper_to_finger_m(float(q7[6]))
        for sign, key in ((1.0, "finger_left_tip"), (-1.0, "finger_right_tip")):
            root = origin + R @ np.array([0.0, sign * half, 0.0])
            segs.append((root, f[key][0], FINGER_RADIUS_M, FINGER_RGB))
    return segs


def render(
    cam: PinholeCamera,
    q14: np.ndarray,
    towel_near_corners_m: np.ndarray,
    towel_far_corners_m: np.ndarray,
    towel_folded: bool = False,
) -> np.ndarray:
    """Render one uint8 RGB image [H, W, 3] of the scene for joint positions q14 (command layout) and the
    towel's two halves (world corners [4, 3] each; the far half drawn darker once folded over)."""
    img = np.empty((cam.h, cam.w, 3), np.uint8)
    img[:] = BACKGROUND_RGB
    cx, cy = TABLE_CENTRE_M
    hx, hy = TABLE_HALF_EXTENT_M
    table = np.array([[cx - hx, cy - hy, 0], [cx + hx, cy - hy, 0], [cx + hx, cy + hy, 0], [cx - hx, cy + hy, 0]])
    _fill_polygon(img, cam, table, TABLE_RGB)
    _fill_polygon(img, cam, towel_near_corners_m, TOWEL_RGB)
    _fill_polygon(img, cam, towel_far_corners_m, TOWEL_FOLD_RGB if towel_folded else TOWEL_RGB)
    # Painter's algorithm: far segments first.
    segs = []
    for a, b, radius, rgb in _segments(q14):
        ca, cb = cam.to_camera(np.stack([a, b]))
        da, db = -ca[2], -cb[2]
        if da < NEAR_M and db < NEAR_M:
            continue
        if da < NEAR_M or db < NEAR_M:  # clip to the near plane
            t = (NEAR_M - da) / (db - da)
            clipped = ca + t * (cb - ca)
            ca, cb = (clipped, cb) if da < NEAR_M else (ca, clipped)
        segs.append((0.5 * (-ca[2] - cb[2]), ca, cb, radius, rgb))
    segs.sort(key=lambda s: -s[0])
    for depth, ca, cb, radius, rgb in segs:
        uv = np.clip(cam.project(np.stack([ca, cb])), -1e4, 1e4)
        thickness = int(np.clip(2.0 * radius * cam.f / max(depth, NEAR_M), 1, 200))
        p0, p1 = (tuple(int(v) for v in np.round(p)) for p in uv)
        shade = tuple(int(c * 0.55) for c in rgb)
        cv2.line(img, p0, p1, shade, thickness + 2, lineType=cv2.LINE_AA)
        cv2.line(img, p0, p1, rgb, max(thickness, 1), lineType=cv2.LINE_AA)
    return img
