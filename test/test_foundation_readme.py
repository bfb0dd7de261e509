"""The README stays true: its test command is the one CI runs, and its parameter tables are the schemas'."""

from __future__ import annotations

import re

from fastwam_ros.runtime.schemas import readme_tables

from conftest import REPO_ROOT


def _readme() -> str:
    return (REPO_ROOT / "README.md").read_text()


def test_parameter_tables_match_the_schemas():
    assert readme_tables().strip() in _readme(), "README parameter tables are stale: python -m fastwam_ros.runtime.schemas"


def test_ci_runs_the_readme_test_command():
    readme, ci = _readme(), (REPO_ROOT / ".ci" / "run").read_text()
    anywhere = readme.split("### 2. Anywhere", 1)[1].split("```", 2)[1]
    commands = [ln.split("#")[0].strip() for ln in anywhere.splitlines() if "pytest" in ln]
    assert commands == ["python -m pytest test -q"], commands
    assert re.search(r"^python -m pytest test -q$", ci, re.M), "CI must run exactly the README test command"
    assert 'pip install -q -e ".[test]"' in ci and "torch==2.13.0" in ci


def test_ros_setup_uses_python_m_colcon_and_pins_opencv_below_5():
    readme = _readme()
    ros = readme.split("### 1. On a ROS 2 machine", 1)[1].split("### 2. Anywhere", 1)[0]
    bare = [ln for ln in ros.splitlines() if re.search(r"(^|&&\s*)colcon\s", ln.strip())]
    assert not bare, f"use `python -m colcon` (the venv's Python): {bare}"
    assert "python -m colcon test-result" in ros
    assert "opencv-python-headless<5" in ros and "opencv-python-headless<5" in (REPO_ROOT / "requirements.txt").read_text()
