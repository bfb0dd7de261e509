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


def pytest_configure(config):
    """Under mutation testing, move every object alive now (torch, numpy, the collected tests) out of the
    garbage collector's generations: each mutant is a fork of the process that imported them, and a full
    collection walking that heap costs more than most mutants' tests."""
    if os.environ.get("FASTWAM_MUTATION"):
        import gc

        gc.freeze()


def pytest_collection_modifyitems(session, config, items):
    """Under mutation testing (FASTWAM_MUTATION=1, run inside mutmut's ``mutants/`` folder), run the tests of a
    mutant fastest first, by the durations mutmut measured on the clean code (``mutmut-stats.json``): mutmut
    stops at the first failure (``-x``), so a killed mutant usually costs only its quickest killer instead of
    whatever the order of its test set happens to be. No effect outside mutation runs."""
    if not os.environ.get("FASTWAM_MUTATION"):
        return
    durations = _mutmut_durations()
    if durations:
        items.sort(key=lambda item: durations.get(item.nodeid, durations.get("mutants/" + item.nodeid, 1.0)))


_DURATIONS: dict[str, object] = {}


def _mutmut_durations() -> dict[str, float]:
    """``duration_by_test`` from mutmut's stats file in the working folder, re-read when the file changes."""
    import json

    path = Path("mutmut-stats.json")
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return {}
    if _DURATIONS.get("stamp") != stamp:
        try:
            _DURATIONS["table"] = dict(json.loads(path.read_text(encoding="utf-8")).get("duration_by_test", {}))
        except (OSError, ValueError):
            _DURATIONS["table"] = {}
        _DURATIONS["stamp"] = stamp
    return _DURATIONS["table"]  # type: ignore[return-value]
