"""MuJoCo physics + offscreen rendering of the ALOHA bimanual scene shipped by the ``gym-aloha`` package.

Only gym-aloha's asset files (MJCF + STL meshes) are used, read from the installed package at run time
(``pip install --no-deps gym-aloha`` is enough; its Python code and its dm_control / gymnasium dependencies are
never imported). The scene adds a head camera and the two-part towel (mocap bodies, no collisions).

Offscreen rendering needs an OpenGL backend chosen *before* ``mujoco`` is imported (``MUJOCO_GL=egl`` on a GPU
machine, ``MUJOCO_GL=osmesa`` with Debian's ``libosmesa6`` on a CPU machine). :func:`probe_render_backend` tries
the candidates in a subprocess (a broken GL stack can crash the process that tries it) and sets ``MUJOCO_GL``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from . import kinematics as K
from .robot import JOINT_NAMES, finger_m_to_gripper, gripper_to_finger_m

LOG = logging.getLogger(__name__)
GL_CANDIDATES = ("egl", "osmesa")
_PROBE_CACHE: dict[str, str | None] = {}

_PROBE_CODE = """
import mujoco
m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><geom type="box" size=".1 .1 .1"/></worldbody></mujoco>')
r = mujoco.Renderer(m, 8, 8)
r.update_scene(mujoco.MjData(m))
r.render()
print("ok")
"""


def gym_aloha_assets_dir() -> Path | None:
    """Folder of gym-aloha's MJCF/STL assets, found without importing gym_aloha; None if not installed."""
    try:
        spec = importlib.util.find_spec("gym_aloha")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "assets"
        if (d / "vx300s_left.xml").is_file():
            return d
    return None


def mujoco_available() -> tuple[bool, str]:
    """(True, "") if mujoco imports and gym-aloha's assets are installed, else (False, reason)."""
    if importlib.util.find_spec("mujoco") is None:
        return False, "the `mujoco` package is not installed (pip install mujoco)"
    if gym_aloha_assets_dir() is None:
        return False, "the `gym-aloha` package (ALOHA model assets) is not installed (pip install --no-deps gym-aloha)"
    return True, ""


def probe_render_backend(timeout_s: float = 60.0) -> str | None:
    """The MUJOCO_GL value that renders offscreen here, or None. Sets os.environ["MUJOCO_GL"] when found.

    An explicit ``MUJOCO_GL`` in the environment is the only candidate tried. When ``mujoco`` is already
    imported in this process, its backend is fixed, so only that one is probed.
    """
    key = os.environ.get("MUJOCO_GL", "")
    if key in _PROBE_CACHE:
        return _PROBE_CACHE[key]
    candidates = [key] if key else list(GL_CANDIDATES)
    found = None
    for gl in candidates:
        env = dict(os.environ, MUJOCO_GL=gl)
        if gl == "osmesa":
            env.setdefault("PYOPENGL_PLATFORM", "osmesa")
        try:
            res = subprocess.run(
                [sys.executable, "-c", _PROBE_CODE], env=env, capture_output=True, text=True, timeout=timeout_s
            )
            ok = res.returncode == 0 and "ok" in res.stdout
            detail = (res.stderr.strip().splitlines() or [""])[-1]
        except (OSError, subprocess.TimeoutExpired) as exc:
            ok, detail = False, str(exc)
        if ok:
            found = gl
            break
        LOG.info("MuJoCo offscreen rendering with MUJOCO_GL=%s failed: %s", gl, detail)
    if found and "mujoco" not in sys.modules:
        os.environ["MUJOCO_GL"] = found
    _PROBE_CACHE[key] = found
    if found:
        _PROBE_CACHE[found] = found
    return found


def _actuator_block(assets_dir: Path) -> str:
    src = (assets_dir / "bimanual_viperx_transfer_cube.xml").read_text()
    m = re.search(r"<actuator>(.*?)</actuator>", src, re.S)
    if m is None:
        raise RuntimeError(f"no <actuator> block in {assets_dir / 'bimanual_viperx_transfer_cube.xml'}")
    return m.group(1)


def scene_xml(assets_dir: Path, head_eye: np.ndarray, head_target: np.ndarray, head_fovy_deg: float) -> str:
    R = K.look_at(head_eye, head_target, np.array([0.0, 0.0, 1.0]))
    xy = " ".join(f"{v:.6f}" for v in np.concatenate([R[:, 0], R[:, 1]]))
    eye = " ".join(f"{v:.6f}" for v in head_eye)
    return f"""<mujoco model="fastwam_demo_aloha">
  <include file="scene.xml"/>
  <include file="vx300s_dependencies.xml"/>
  <worldbody>
    <include file="vx300s_left.xml"/>
    <include file="vx300s_right.xml"/>
    <camera name="head" pos="{eye}" xyaxes="{xy}" fovy="{head_fovy_deg:g}"/>
    <body name="towel_near" mocap="true" pos="0 0.5 0.003">
      <geom name="towel_near" type="box" size="0.12 0.045 0.0015" rgba="0.24 0.53 0.9 1"
            contype="0" conaffinity="0"/>
    </body>
    <body name="towel_far" mocap="true" pos="0 0.59 0.003">
      <geom name="towel_far" type="box" size="0.12 0.045 0.0015" rgba="0.24 0.53 0.9 1"
            contype="0" conaffinity="0"/>
    </body>
  </worldbody>
  <actuator>{_actuator_block(assets_dir)}</actuator>
</mujoco>
"""


def _box_from_corners(c: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """(centre [3], quat wxyz [4], (half x, half y)) of a box approximating quad c [4,3] (hinge edge c0-c1)."""
    hinge = c[1] - c[0]
    yaw = np.arctan2(hinge[1], hinge[0])
    centre = c.mean(axis=0)
    half_x = 0.5 * np.linalg.norm(hinge[:2])
    depth = 0.5 * (c[3] + c[2]) - 0.5 * (c[0] + c[1])
    half_y = max(0.5 * np.linalg.norm(depth[:2]), 1e-4)
    quat = np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])
    return centre, quat, (half_x, half_y)


class MujocoBackend:
    """ALOHA physics: 16 MuJoCo joints (2 finger slides per arm) behind the 14-value command layout."""

    physics = "mujoco"

    def __init__(self, head_eye, head_target, head_fovy_deg: float, render_gl: str | None):
        import mujoco  # deferred: MUJOCO_GL must be set first

        self._mj = mujoco
        assets_dir = gym_aloha_assets_dir()
        if assets_dir is None:
            raise RuntimeError(mujoco_available()[1])
        assets = {p.name: p.read_bytes() for p in assets_dir.iterdir() if p.suffix in (".xml", ".stl")}
        xml = scene_xml(assets_dir, np.asarray(head_eye, float), np.asarray(head_target, float), head_fovy_deg)
        self.model = mujoco.MjModel.from_xml_string(xml, assets)
        self.data = mujoco.MjData(self.model)
        self.timestep_s = float(self.model.opt.timestep)
        self.render_gl = render_gl
        self._renderers: dict[tuple[int, int], object] = {}
        prefix = {"left": "vx300s_left/", "right": "vx300s_right/"}
        arm = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
        self._qpos_idx = []  # 14 qpos addresses (grippers: the left finger slide)
        for side in ("left", "right"):
            for j in arm:
                self._qpos_idx.append(self.model.jnt_qposadr[self.model.joint(prefix[side] + j).id])
            self._qpos_idx.append(self.model.jnt_qposadr[self.model.joint(prefix[side] + "left_finger").id])
        self._qvel_idx = [
            self.model.jnt_dofadr[self.model.joint(self.model.jnt_qposadr.tolist().index(a)).id]
            for a in self._qpos_idx
        ]
        self._mocap = {
            name: self.model.body_mocapid[self.model.body(name).id] for name in ("towel_near", "towel_far")
        }
        self._geom = {name: self.model.geom(name).id for name in ("towel_near", "towel_far")}
        assert len(JOINT_NAMES) == 14

    # -- state ------------------------------------------------------------------------------------------------
    def _to_mj(self, q14: np.ndarray) -> np.ndarray:
        """14-value command -> the 16 actuator controls (grippers drive both finger slides)."""
        out = []
        for s in (0, 1):
            q = q14[7 * s : 7 * s + 7]
            finger = gripper_to_finger_m(q[6])
            out.extend([*q[:6], finger, -finger])
        return np.asarray(out)

    def set_state(self, q14: np.ndarray) -> None:
        mj = self._mj
        mj.mj_resetData(self.model, self.data)
        ctrl = self._to_mj(q14)
        self.data.qpos[:16] = ctrl
        self.data.ctrl[:16] = ctrl
        mj.mj_forward(self.model, self.data)

    def positions(self) -> np.ndarray:
        q = self.data.qpos[self._qpos_idx].astype(np.float64)
        q[6], q[13] = finger_m_to_gripper(q[6]), finger_m_to_gripper(q[13])
        return q

    def velocities(self) -> np.ndarray:
        v = self.data.qvel[self._qvel_idx].astype(np.float64)
        scale = 1.0 / (gripper_to_finger_m(1.0) - gripper_to_finger_m(0.0))
        v[6] *= scale
        v[13] *= scale
        return v

    def advance(self, command14: np.ndarray, dt_s: float) -> None:
        self.data.ctrl[:16] = self._to_mj(command14)
        n = max(1, int(round(dt_s / self.timestep_s)))
        for _ in range(n):
            self._mj.mj_step(self.model, self.data)

    # -- drawing ----------------------------------------------------------------------------------------------
    def set_towel(self, near_corners: np.ndarray, far_corners: np.ndarray, folded: bool) -> None:
        for name, corners in (("towel_near", near_corners), ("towel_far", far_corners)):
            centre, quat, (hx, hy) = _box_from_corners(corners)
            mid = self._mocap[name]
            self.data.mocap_pos[mid] = centre
            self.data.mocap_quat[mid] = quat
            g = self._geom[name]
            self.model.geom_size[g, :2] = (hx, hy)
        g = self._geom["towel_far"]
        self.model.geom_rgba[g] = (0.16, 0.37, 0.7, 1.0) if folded else (0.24, 0.53, 0.9, 1.0)
        self._mj.mj_forward(self.model, self.data)

    def render(self, camera: str, height: int, width: int) -> np.ndarray:
        key = (height, width)
        if key not in self._renderers:
            self._renderers[key] = self._mj.Renderer(self.model, height, width)
        r = self._renderers[key]
        r.update_scene(self.data, camera=camera)
        return np.ascontiguousarray(r.render())

    def close(self) -> None:
        for r in self._renderers.values():
            try:
                r.close()
            except Exception:  # noqa: BLE001 - best effort at shutdown
                pass
        self._renderers.clear()
