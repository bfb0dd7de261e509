"""Shared pytest fixtures: where ../shared is, and CPU settings that keep the suite fast."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from hypothesis import settings

# Mutation testing (scripts/mutation_safety.sh) sets FASTWAM_MUTATION=1: property tests draw the same examples
# every run (a mutant is killed or not, independent of luck) and fewer of them (FASTWAM_PROPERTY_SCALE).
settings.register_profile("mutation", derandomize=True, database=None)
if os.environ.get("FASTWAM_MUTATION"):
    settings.load_profile("mutation")

REPO_ROOT = Path(__file__).resolve().parents[1]


def load_script(relative: str, name: str | None = None):
    """A script of the repo that is not in the package (e.g. ``benchmarks/bench_jpeg_guard.py``) as a module."""
    path = REPO_ROOT / relative
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def shared_dir() -> Path:
    """The shared/ folder that sits beside the checkout (override with $FASTWAM_SHARED)."""
    env = os.environ.get("FASTWAM_SHARED")
    return Path(env) if env else REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared() -> Path:
    """The project's shared fixtures (official parity tensors, a real rosbag2 recording). CI always has them
    beside the checkout, and a missing folder fails there; elsewhere (e.g. `colcon test` on a robot) the tests
    that need them are skipped with the reason."""
    d = shared_dir()
    if not d.is_dir():
        msg = f"shared/ fixtures not found at {d} (set FASTWAM_SHARED to the folder)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return d


@pytest.fixture(scope="session")
def parity_dir(shared: Path) -> Path:
    return shared / "parity" / "fastwam_A"


@pytest.fixture(scope="session")
def sample_bag(shared: Path) -> Path:
    return shared / "recordings" / "sample_episode"


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    try:
        import torch
    except ImportError:  # the control/perception cores do not need torch
        yield
        return
    torch.set_num_threads(1)
    yield
