"""Recording scripted demonstrations in the simulator, and the small on-disk format they are kept in.

Layout of a demo dataset folder (one compressed ``.npz`` per episode + one ``meta.json``)::

    meta.json                 fps, instruction, joint_names, cameras, camera_hw, per-episode sim mode / seed
    episode_000.npz           head, left_wrist, right_wrist: uint8 [T, H, W, 3] RGB frames at tick k
                              state: float32 [T, 14]   measured joint positions at tick k (rad / gripper 0..1)
                              action: float32 [T, 14]  position command issued at tick k (held until k+1)
                              timestamps_s: float64 [T] sim seconds from the episode start
                              fold_fraction: float64 [T] task progress (0 flat .. 1 folded)

:func:`read_episodes` turns the folder into ``fastwam_ros.training.episode.Episode`` objects (frames already
decoded), the type every training source produces.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .robot import CAMERAS, GRIPPER_INDICES, HOME_POSITIONS, JOINT_NAMES
from .scripted import INSTRUCTION, make_folder, offset_at, smooth_offsets
from .sim import BimanualSim

FORMAT_VERSION = 1


# Start-state variation of a recorded episode: the home pose plus a uniform offset of up to this much on every
# arm joint (rad) / gripper opening (the ranges fastwam-eval draws its episodes' start states from).
START_JITTER = (0.05, 0.1)


def record_episode(sim: BimanualSim, seed: int, fps: float = 30.0, tail_s: float = 1.0,
                   perturb_rad: float = 0.0) -> dict[str, np.ndarray]:
    """Reset `sim` with `seed`, run one scripted fold at `fps` and return the episode arrays (see module doc).

    The robot starts at the home pose jittered by ``START_JITTER``. With ``perturb_rad`` > 0 the recording is
    DART-style: the command *executed* is the script's plus a smooth random offset of up to `perturb_rad` on every
    arm joint (:func:`scripted.smooth_offsets`), while the recorded ``action`` stays the script's own command, so
    the data shows how to get back on track from states the clean script never visits."""
    rng = np.random.default_rng([int(seed), 0xDA7A])
    grip = np.zeros(len(HOME_POSITIONS), dtype=bool)
    grip[list(GRIPPER_INDICES)] = True
    start = HOME_POSITIONS + rng.uniform(-1.0, 1.0, len(grip)) * np.where(grip, START_JITTER[1], START_JITTER[0])
    sim.reset(seed=seed, positions=start)
    folder = make_folder(sim.towel, np.random.default_rng(seed + 100_000), start=sim.joint_positions())
    dt_s = 1.0 / fps
    n_ticks = int(np.ceil((folder.duration_s + tail_s) * fps))
    times, offsets = smooth_offsets(rng, folder.duration_s, np.where(grip, 0.0, perturb_rad))
    frames = {cam: [] for cam in sim.cameras}
    state, action, stamps, fold = [], [], [], []
    for _ in range(n_ticks):
        t = sim.time_s
        for cam in sim.cameras:
            frames[cam].append(sim.render(cam))
        state.append(sim.joint_positions())
        cmd = folder.command(t + dt_s)  # the pose the script wants by the next tick
        action.append(cmd)
        stamps.append(t)
        fold.append(sim.fold_fraction())
        sim.step(cmd + offset_at(times, offsets, t + dt_s), dt_s)
    out = {cam: np.stack(v).astype(np.uint8) for cam, v in frames.items()}
    out["state"] = np.asarray(state, np.float32)
    out["action"] = np.asarray(action, np.float32)
    out["timestamps_s"] = np.asarray(stamps, np.float64)
    out["fold_fraction"] = np.asarray(fold, np.float64)
    return out


def write_dataset(
    out_dir: str | Path,
    n_episodes: int,
    modes: list[str],
    sim_factory: Callable[[str], BimanualSim],
    fps: float = 30.0,
    seed: int = 0,
    resume: bool = False,
    log: Callable[[str], None] = print,
    perturb_rad: float = 0.0,
) -> dict:
    """Record `n_episodes` episodes, cycling through sim `modes` ("mujoco" / "kinematic"); returns meta.

    With `perturb_rad` > 0 episodes cycle through DART perturbation amplitudes 0, `perturb_rad` / 2 and
    `perturb_rad` (see :func:`record_episode`): a third of the episodes are clean.

    meta.json is rewritten after every episode, so an interrupted run leaves a readable dataset; with
    `resume`, episodes whose npz file exists are kept (their recording is deterministic in the seed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sims: dict[str, BimanualSim] = {}
    episodes = []
    meta = {
        "format": "fastwam_ros demo npz",
        "format_version": FORMAT_VERSION,
        "fps": fps,
        "instruction": INSTRUCTION,
        "joint_names": list(JOINT_NAMES),
        "cameras": list(CAMERAS),
        "camera_hw": None,
        "units": "arm joints rad, grippers normalised opening 0 closed .. 1 open",
        "episodes": episodes,
    }
    try:
        for i in range(n_episodes):
            mode = modes[i % len(modes)]
            if mode not in sims:
                sims[mode] = sim_factory(mode)
            sim = sims[mode]
            meta["camera_hw"] = {c: list(hw) for c, hw in sim.config.camera_hw.items()}
            ep_seed = seed * 1000 + i
            name = f"episode_{i:03d}"
            path = out / f"{name}.npz"
            if resume and path.is_file():
                with np.load(path) as z:
                    arrays = {k: z[k] for k in ("state", "fold_fraction")}
            else:
                arrays = record_episode(sim, ep_seed, fps=fps, perturb_rad=perturb_rad * (i % 3) / 2)
                np.savez_compressed(path, **arrays)
            episodes.append(
                {
                    "name": name,
                    "seed": ep_seed,
                    "sim_mode": sim.mode,
                    "render_backend": sim.render_backend,
                    "length": int(len(arrays["state"])),
                    "perturb_rad": perturb_rad * (i % 3) / 2,
                    "final_fold_fraction": float(arrays["fold_fraction"][-1]),
                }
            )
            (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
            log(f"{name}: {sim.mode}/{sim.render_backend}, {len(arrays['state'])} ticks, "
                f"fold {arrays['fold_fraction'][-1]:.2f}")
    finally:
        for s in sims.values():
            s.close()
    return meta


def merge_datasets(parts: list[str | Path], out_dir: str | Path, move: bool = False) -> dict:
    """Concatenate demo datasets (same fps, cameras, joints) into `out_dir` as episode_000.. in order; returns
    the merged meta. ``move`` moves the episode files instead of copying them."""
    import shutil

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    merged: dict | None = None
    for part in parts:
        meta = read_meta(part)
        if merged is None:
            merged = {**meta, "episodes": []}
        elif any(meta[k] != merged[k] for k in ("fps", "joint_names", "cameras", "camera_hw", "instruction")):
            raise ValueError(f"{part}: fps / joints / cameras / instruction differ from {parts[0]}")
        for ep in meta["episodes"]:
            name = f"episode_{len(merged['episodes']):03d}"
            src, dst = Path(part) / f"{ep['name']}.npz", out / f"{name}.npz"
            shutil.move(src, dst) if move else shutil.copyfile(src, dst)
            merged["episodes"].append({**ep, "name": name})
    if merged is None:
        raise ValueError("no datasets to merge")
    (out / "meta.json").write_text(json.dumps(merged, indent=2) + "\n")
    return merged


def read_meta(root: str | Path) -> dict:
    path = Path(root) / "meta.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: generate the data with scripts/make_demo_data.py")
    return json.loads(path.read_text())


def read_episodes(root: str | Path, limit: int | None = None) -> list:
    """The dataset at `root` as a list of training ``Episode`` objects (frames decoded, in memory)."""
    from ..training.episode import Episode, FrameSequence, identity_decoder

    root = Path(root)
    meta = read_meta(root)
    out = []
    for ep in meta["episodes"][:limit]:
        with np.load(root / f"{ep['name']}.npz") as z:
            arrays = {k: z[k] for k in z.files}
        n = len(arrays["state"])
        cams = {
            cam: FrameSequence(list(arrays[cam]), np.arange(n, dtype=np.int64), identity_decoder, source=cam)
            for cam in meta["cameras"]
        }
        out.append(
            Episode(
                name=ep["name"],
                fps=float(meta["fps"]),
                state=arrays["state"],
                action=arrays["action"],
                instruction=meta["instruction"],
                cameras=cams,
                timestamps_s=arrays["timestamps_s"],
                meta={"sim_mode": ep["sim_mode"], "render_backend": ep["render_backend"], "seed": ep["seed"]},
            )
        )
    return out
