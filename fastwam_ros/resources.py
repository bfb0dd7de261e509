"""Locate the package's shared files (``models/``, ``config/``, ``launch/``) in every install.

Search order:
1. ``$FASTWAM_ROS_SHARE`` if set (a directory holding ``models/``, ``config/`` ...);
2. the source checkout this module was imported from (editable pip install, tests);
3. ``<sys.prefix>/share/fastwam_ros`` (a regular ``pip install``, see setup.py data_files);
4. the ament index (``ros2`` install space), when ``ament_index_python`` is importable.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE_NAME = "fastwam_ros"


def share_dirs() -> list[Path]:
    """Candidate share directories, best first. Only existing ones are returned."""
    candidates: list[Path] = []
    env = os.environ.get("FASTWAM_ROS_SHARE")
    if env:
        candidates.append(Path(env))
    candidates.append(Path(__file__).resolve().parent.parent)
    candidates.append(Path(sys.prefix) / "share" / PACKAGE_NAME)
    try:  # pragma: no cover - only with ROS installed
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(PACKAGE_NAME)))
    except Exception:  # noqa: BLE001 - absent ROS, or package not in the index
        pass
    seen: list[Path] = []
    for c in candidates:
        if c.is_dir() and c not in seen:
            seen.append(c)
    return seen


def find_share_file(*parts: str) -> Path:
    """Return the first existing ``<share>/<parts...>``; raise FileNotFoundError listing where it looked."""
    looked = []
    for base in share_dirs():
        p = base.joinpath(*parts)
        looked.append(str(p))
        if p.exists():
            return p
    raise FileNotFoundError(
        f"{'/'.join(parts)} not found in the fastwam_ros share directories; looked in: "
        + (", ".join(looked) or "(none exist)")
        + ". Set FASTWAM_ROS_SHARE to the directory holding models/ and config/."
    )
