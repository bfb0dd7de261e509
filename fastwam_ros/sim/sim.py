"""BimanualSim: the demo's simulated bimanual robot with head and wrist cameras, ROS-free and in sim time.

Two physics backends behind one API:

* ``"mujoco"``: MuJoCo with the ALOHA model from ``gym-aloha`` (position actuators, gravity, joint friction),
  rendered offscreen with EGL or OSMesa. If no offscreen GL works, physics stays MuJoCo and the images come
  from the synthetic renderer (``render_backend == "synthetic"``, logged as a warning).
* ``"kinematic"``: numpy only. Each joint tracks its command with a first-order lag (time constant
  ``tracking_time_constant_s``) under the velocity limits; images from the synthetic renderer. Always works.

``mode="auto"`` picks MuJoCo when it and an offscreen GL backend are available, else kinematic (with a warning
that says why). Nothing here reads a clock: time advances only through :meth:`BimanualSim.step`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields

import numpy as np

from . import kinematics as K
from . import synthetic
from .robot import CAMERAS, HOME_POSITIONS, JOINT_NAMES, N_JOINTS, joint_limits, limit_arrays, urdf_string
from .towel import Towel, TowelParams

LOG = logging.getLogger(__name__)
MODES = ("auto", "mujoco", "kinematic")


@dataclass
class SimConfig:
    """Simulator settings (the ``sim:`` section of a robot file, config/robots/demo_aloha.yaml). Units in the names."""

    # Camera image sizes (height, width) in px. The defaults match the demo checkpoint's tiling (robotwin
    # layout, 96x128 frame: head resized to 64x128 on top, each wrist to 32x64 below), so nothing is distorted.
    camera_hw: dict = field(
        default_factory=lambda: {"head": (64, 128), "left_wrist": (48, 96), "right_wrist": (48, 96)}
    )
    camera_rate_hz: float = 30.0  # camera frames per second (ROS sim_node and the ROS-free demo)
    head_eye_m: tuple[float, float, float] = (0.0, 0.0, 0.8)
    head_target_m: tuple[float, float, float] = (0.0, 0.5, 0.0)
    head_fovy_deg: float = 44.0  # vertical; ~78 deg horizontal at 2:1
    wrist_fovy_deg: float = 20.0  # as in the ALOHA model
    tracking_time_constant_s: float = 0.05  # kinematic backend's first-order joint lag
    initial_positions: tuple[float, ...] = tuple(HOME_POSITIONS.tolist())
    towel_centre_x_range_m: tuple[float, float] = (-0.06, 0.06)
    towel_centre_y_range_m: tuple[float, float] = (0.44, 0.54)
    towel_yaw_range_rad: tuple[float, float] = (-0.25, 0.25)
    towel_size_xy_m: tuple[float, float] = (0.24, 0.18)
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict | None) -> SimConfig:
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown sim config keys {unknown}; known: {sorted(known)}")
        out = cls()
        for k, v in d.items():
            cur = getattr(out, k)
            if k == "camera_hw":
                v = {**cur, **{str(c): tuple(int(x) for x in hw) for c, hw in dict(v).items()}}
            setattr(out, k, tuple(v) if isinstance(cur, tuple) else type(cur)(v))
        bad = sorted(set(out.camera_hw) - set(CAMERAS))
        if bad:
            raise ValueError(f"sim.camera_hw: unknown cameras {bad}; cameras: {list(CAMERAS)}")
        if len(out.initial_positions) != N_JOINTS:
            raise ValueError(f"sim.initial_positions must have {N_JOINTS} values, got {len(out.initial_positions)}")
        return out


class KinematicBackend:
    """First-order joint tracking in numpy."""

    physics = "kinematic"

    def __init__(self, time_constant_s: float):
        self.tau_s = float(time_constant_s)
        self.q = HOME_POSITIONS.copy()
        self.v = np.zeros(N_JOINTS)
        self._lower, self._upper, self._vmax = limit_arrays()

    def set_state(self, q14: np.ndarray) -> None:
        self.q = np.asarray(q14, float).copy()
        self.v[:] = 0.0

    def positions(self) -> np.ndarray:
        return self.q.copy()

    def velocities(self) -> np.ndarray:
        return self.v.copy()

    def advance(self, command14: np.ndarray, dt_s: float) -> None:
        alpha = 1.0 - np.exp(-dt_s / self.tau_s) if self.tau_s > 0 else 1.0
        dq = np.clip(alpha * (command14 - self.q), -self._vmax * dt_s, self._vmax * dt_s)
        self.q = np.clip(self.q + dq, self._lower, self._upper)
        self.v = dq / dt_s


class BimanualSim:
    """Simulated ALOHA-style bimanual robot (14 joints) with cameras ``head``, ``left_wrist``, ``right_wrist``.

    Typical loop (all times in sim seconds)::

        sim = BimanualSim(SimConfig(), mode="auto", seed=0)
        while sim.time_s < 10.0:
            images = {cam: sim.render(cam) for cam in sim.cameras}   # uint8 HxWx3 RGB
            q = sim.joint_positions()                                  # [14] rad / normalised gripper
            sim.step(command_positions, dt_s=1 / 30)                    # position command [14]

    Attributes: ``mode`` ("mujoco" | "kinematic", the physics actually used), ``render_backend``
    ("mujoco-egl" | "mujoco-osmesa" | "synthetic"), ``fallback_reason`` (why auto/mujoco fell back, or ""),
    ``joint_names``, ``cameras``, ``joint_limits`` (name -> JointLimit), ``command_clamp_count``.
    """

    def __init__(self, config: SimConfig | None = None, mode: str = "auto", seed: int = 0):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.config = config or SimConfig()
        self.joint_names: tuple[str, ...] = JOINT_NAMES
        self.cameras: tuple[str, ...] = CAMERAS
        self.joint_limits = joint_limits()
        self._lower, self._upper, self._vmax = limit_arrays()
        self.fallback_reason = ""
        self._backend = self._make_backend(mode)
        self.mode = self._backend.physics
        self.command_clamp_count = 0  # commands (per joint value) outside the position limits, clamped
        self._last_command = None
        self.reset(seed)

    # -- construction -----------------------------------------------------------------------------------------
    def _make_backend(self, mode: str):
        if mode == "kinematic":
            self.render_backend = "synthetic"
            return KinematicBackend(self.config.tracking_time_constant_s)
        from . import mujoco_backend as mb

        ok, why = mb.mujoco_available()
        gl = mb.probe_render_backend() if ok else None
        if not ok:
            if mode == "mujoco":
                raise RuntimeError(f"sim mode 'mujoco' unavailable: {why}")
            self.fallback_reason = why
        elif gl is None and mode == "auto":
            self.fallback_reason = (
                "no MuJoCo offscreen OpenGL backend works here (tried MUJOCO_GL=egl and osmesa; on Debian/Ubuntu "
                "`apt-get install libosmesa6 libegl1 libgl1`)"
            )
        if self.fallback_reason:
            LOG.warning("BimanualSim: falling back to the kinematic simulator: %s", self.fallback_reason)
            self.render_backend = "synthetic"
            return KinematicBackend(self.config.tracking_time_constant_s)
        c = self.config
        backend = mb.MujocoBackend(c.head_eye_m, c.head_target_m, c.head_fovy_deg, gl)
        if gl is None:
            self.fallback_reason = "no MuJoCo offscreen OpenGL backend: MuJoCo physics, synthetic images"
            LOG.warning("BimanualSim: %s", self.fallback_reason)
            self.render_backend = "synthetic"
        else:
            self.render_backend = f"mujoco-{gl}"
        return backend

    # -- episode ----------------------------------------------------------------------------------------------
    def reset(self, seed: int | None = None, positions: np.ndarray | None = None) -> None:
        """Start a new episode at time 0: home pose (or `positions`), a new random towel pose from `seed`."""
        rng = np.random.default_rng(seed)
        c = self.config
        self.towel = Towel(
            TowelParams(
                centre_xy_m=(float(rng.uniform(*c.towel_centre_x_range_m)), float(rng.uniform(*c.towel_centre_y_range_m))),
                size_xy_m=tuple(c.towel_size_xy_m),
                yaw_rad=float(rng.uniform(*c.towel_yaw_range_rad)),
            )
        )
        q0 = np.asarray(c.initial_positions if positions is None else positions, float)
        self._backend.set_state(np.clip(q0, self._lower, self._upper))
        self._last_command = self._backend.positions()
        self._time_ns = 0
        self._update_towel()

    @property
    def time_s(self) -> float:
        """Sim time in seconds since the last reset."""
        return self._time_ns * 1e-9

    @property
    def time_ns(self) -> int:
        """Sim time in integer nanoseconds (exact; use for stamps)."""
        return self._time_ns

    def step(self, command_positions: np.ndarray, dt_s: float) -> None:
        """Apply a 14-value position command (rad / normalised gripper) for `dt_s` sim seconds.

        Values outside the position limits are clamped and counted in ``command_clamp_count``; NaNs are
        rejected (the previous command is held)."""
        cmd = np.asarray(command_positions, dtype=np.float64).reshape(-1)
        if cmd.shape != (N_JOINTS,):
            raise ValueError(f"command must have {N_JOINTS} values ({', '.join(self.joint_names)}), got {cmd.shape}")
        if dt_s <= 0:
            raise ValueError(f"dt_s must be > 0, got {dt_s}")
        if not np.all(np.isfinite(cmd)):
            LOG.warning("BimanualSim.step: non-finite command ignored, holding the previous one")
            cmd = self._last_command
        clamped = np.clip(cmd, self._lower, self._upper)
        self.command_clamp_count += int(np.count_nonzero(clamped != cmd))
        self._last_command = clamped
        self._backend.advance(clamped, float(dt_s))
        self._time_ns += int(round(dt_s * 1e9))
        self._update_towel()

    # -- observation ------------------------------------------------------------------------------------------
    def joint_positions(self) -> np.ndarray:
        """Measured joint positions [14] (rad; grippers normalised 0 closed .. 1 open)."""
        return self._backend.positions()

    def joint_velocities(self) -> np.ndarray:
        """Measured joint velocities [14] (rad/s; grippers 1/s)."""
        return self._backend.velocities()

    def last_command(self) -> np.ndarray:
        """The (clamped) command currently applied [14]."""
        return np.asarray(self._last_command, float).copy()

    def render(self, camera: str, height: int | None = None, width: int | None = None) -> np.ndarray:
        """RGB image uint8 [H, W, 3] from `camera` (one of ``self.cameras``); size defaults to
        ``config.camera_hw[camera]``."""
        if camera not in self.cameras:
            raise ValueError(f"unknown camera {camera!r}; cameras: {self.cameras}")
        h0, w0 = self.config.camera_hw.get(camera, (64, 80))
        h = int(height or h0)
        w = int(width or w0)
        if self.render_backend != "synthetic":
            return self._backend.render(camera, h, w)
        return synthetic.render(self._pinhole(camera, h, w), self.joint_positions(), *self._towel_quads())

    def fold_fraction(self) -> float:
        """Task progress: 0 towel flat .. 1 folded in half (see :mod:`fastwam_ros.sim.towel`)."""
        return self.towel.fold_fraction()

    def urdf(self) -> str:
        """URDF string of the 14 joints with their limits (for robot_description / the controller)."""
        return urdf_string()

    def close(self) -> None:
        """Release the offscreen GL renderers (call before exit with MuJoCo rendering)."""
        close = getattr(self._backend, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> BimanualSim:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------------------------
    def _pinhole(self, camera: str, h: int, w: int) -> synthetic.PinholeCamera:
        c = self.config
        if camera == "head":
            eye = np.asarray(c.head_eye_m, float)
            R = K.look_at(eye, np.asarray(c.head_target_m, float), np.array([0.0, 0.0, 1.0]))
            return synthetic.PinholeCamera(eye, R, c.head_fovy_deg, h, w)
        side = camera.split("_")[0]
        q = self.joint_positions()
        s = 0 if side == "left" else 1
        eye, R = K.wrist_camera_pose(side, q[7 * s : 7 * s + 7])
        return synthetic.PinholeCamera(eye, R, c.wrist_fovy_deg, h, w)

    def _towel_quads(self):
        folded = self.towel.fold_fraction() > 0.5
        return self.towel.near_half_corners(), self.towel.far_half_corners(), folded

    def _update_towel(self) -> None:
        q = self.joint_positions()
        pts = {side: K.gripper_point(side, q[7 * s : 7 * s + 7]) for s, side in enumerate(("left", "right"))}
        self.towel.update(pts, {"left": q[6], "right": q[13]})
        if self.render_backend != "synthetic":
            near, far, folded = self._towel_quads()
            self._backend.set_towel(near, far, folded)
