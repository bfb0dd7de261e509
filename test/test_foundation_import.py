"""The ROS-free core imports without rclpy; importing a node module without ROS gives one clear error."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

CORE = ["fastwam_ros", "fastwam_ros.perception", "fastwam_ros.model", "fastwam_ros.control", "fastwam_ros.training"]

# Run in a fresh interpreter with rclpy made unimportable, so this holds on ROS machines too.
_BLOCK_ROS = (
    "import sys\n"
    "class _Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('rclpy', 'launch_ros', 'cv_bridge'):\n"
    "            raise ImportError('blocked for the test: ' + name)\n"
    "sys.meta_path.insert(0, _Block())\n"
)


def _run(code):
    return subprocess.run([sys.executable, "-c", _BLOCK_ROS + code], cwd=REPO_ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("module", CORE)
def test_core_imports_without_ros(module):
    res = _run(f"import {module}\nassert 'rclpy' not in sys.modules\n")
    assert res.returncode == 0, res.stderr


def test_node_import_without_ros_names_the_missing_installation():
    res = _run("import fastwam_ros.nodes\n")
    assert res.returncode != 0
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError") and "ROS 2 installation" in last and "rclpy" in last


@pytest.mark.skipif(importlib.util.find_spec("rclpy") is not None, reason="ROS 2 is installed here")
def test_rclpy_really_absent_here():
    with pytest.raises(ImportError, match="ROS 2"):
        import fastwam_ros.nodes  # noqa: F401
