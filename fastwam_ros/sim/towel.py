"""A kinematic "towel": a flat rectangle on the table whose far half can be folded over onto the near half.

Not cloth physics. The towel is two halves hinged at its mid line; the far half's two outer corners are grasp
points. A corner attaches to a gripper whose finger-tip midpoint comes within ``grasp_radius_m`` of it (in the
table plane, below ``grasp_height_m``) while the gripper is closed, follows the gripper in the table plane, and
stays where it is released when the gripper opens. ``fold_fraction`` (0 flat .. 1 far corners on the near
corners) is the demo's task-progress measure. Both backends share this model; MuJoCo only draws it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TOWEL_Z_M = 0.003
GRIPPER_CLOSED_BELOW = 0.3  # normalised opening under which a gripper holds a corner
GRIPPER_OPEN_ABOVE = 0.6  # normalised opening over which a held corner is released


@dataclass
class TowelParams:
    centre_xy_m: tuple[float, float] = (0.0, 0.5)
    size_xy_m: tuple[float, float] = (0.24, 0.18)  # width (x), depth (y)
    yaw_rad: float = 0.0
    grasp_radius_m: float = 0.05
    grasp_height_m: float = 0.07


class Towel:
    """Towel state. Corner order: near-left, near-right, far-right, far-left ("near" = towards the viewer, -y)."""

    def __init__(self, params: TowelParams):
        self.params = params
        cx, cy = params.centre_xy_m
        w, d = params.size_xy_m
        c, s = np.cos(params.yaw_rad), np.sin(params.yaw_rad)
        R = np.array([[c, -s], [s, c]])
        local = np.array([[-w / 2, -d / 2], [w / 2, -d / 2], [w / 2, d / 2], [-w / 2, d / 2]])
        self.rest_corners_xy = local @ R.T + np.array([cx, cy])
        self.far_xy = self.rest_corners_xy[[3, 2]].copy()  # [far-left, far-right] current positions
        self.held_by: list[str | None] = [None, None]

    # -- geometry ---------------------------------------------------------------------------------------------
    @property
    def near_xy(self) -> np.ndarray:
        return self.rest_corners_xy[[0, 1]]

    @property
    def mid_xy(self) -> np.ndarray:
        """Hinge line end points [left, right]."""
        return 0.5 * (self.rest_corners_xy[[0, 1]] + self.rest_corners_xy[[3, 2]])

    def grasp_points_xy(self) -> np.ndarray:
        """Current far-corner positions [far-left, far-right] in metres (where a fold starts)."""
        return self.far_xy.copy()

    def fold_fraction(self) -> float:
        """0 when flat, 1 when both far corners lie on the near corners (mean over the two corners)."""
        start = self.rest_corners_xy[[3, 2]]
        goal = self.near_xy
        span = goal - start
        prog = np.sum((self.far_xy - start) * span, axis=1) / np.maximum(np.sum(span * span, axis=1), 1e-9)
        return float(np.clip(prog, 0.0, 1.0).mean())

    def near_half_corners(self) -> np.ndarray:
        """World corners [4, 3] (m) of the half that never moves."""
        m = self.mid_xy
        xy = np.array([self.near_xy[0], self.near_xy[1], m[1], m[0]])
        return np.column_stack([xy, np.full(4, TOWEL_Z_M)])

    def far_half_corners(self) -> np.ndarray:
        """World corners [4, 3] (m) of the foldable half (hinge left, hinge right, far-right, far-left)."""
        m = self.mid_xy
        folded = self.fold_fraction() > 0.5
        z = TOWEL_Z_M * (3.0 if folded else 1.0)
        xy = np.array([m[0], m[1], self.far_xy[1], self.far_xy[0]])
        return np.column_stack([xy, np.full(4, z)])

    # -- dynamics ---------------------------------------------------------------------------------------------
    def update(self, gripper_points_m: dict[str, np.ndarray], gripper_openings: dict[str, float]) -> None:
        """Advance the grasp state given each arm's finger-tip midpoint (world, m) and gripper opening."""
        for side, point in gripper_points_m.items():
            opening = float(gripper_openings[side])
            held = [i for i in (0, 1) if self.held_by[i] == side]
            if held and opening > GRIPPER_OPEN_ABOVE:
                for i in held:
                    self.held_by[i] = None
                held = []
            if not held and opening < GRIPPER_CLOSED_BELOW and point[2] < self.params.grasp_height_m:
                d = np.linalg.norm(self.far_xy - point[:2], axis=1)
                for i in np.argsort(d):
                    if d[i] < self.params.grasp_radius_m and self.held_by[i] is None:
                        self.held_by[i] = side
                        held = [int(i)]
                        break
            for i in held:
                self.far_xy[i] = point[:2]
