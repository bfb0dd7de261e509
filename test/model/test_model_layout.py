"""The model package's layout: public names from ``fastwam_ros.model``, and the flat module paths of earlier
versions resolve to the very module objects in the sub-packages (code and open branches keep importing)."""

from __future__ import annotations

import importlib

import pytest

import fastwam_ros.model as model_pkg

FLAT_TO_NEW = {
    "policy": "inference.policy", "fast_path": "inference.fast_path", "fastwam": "network.fastwam",
    "text": "processing.text", "text_cache": "processing.text_cache", "processor": "processing.processor",
    "serialization": "checkpoints.serialization", "checkpoint": "checkpoints.checkpoint",
    "weights": "checkpoints.weights", "normalizer": "processing.normalizer", "encoders": "processing.encoders",
}


@pytest.mark.parametrize("old,new", sorted(FLAT_TO_NEW.items()))
def test_flat_module_paths_are_the_same_modules(old, new):
    a = importlib.import_module(f"fastwam_ros.model.{old}")
    b = importlib.import_module(f"fastwam_ros.model.{new}")
    assert a is b and a.__name__ == f"fastwam_ros.model.{new}"


def test_public_names_import_from_the_package():
    for name in model_pkg.__all__:
        assert getattr(model_pkg, name) is not None, name
    from fastwam_ros.model import FastWAMPolicy, FastWAMProcessor
    from fastwam_ros.model.inference.policy import FastWAMPolicy as P
    from fastwam_ros.model.processing.processor import FastWAMProcessor as Q

    assert FastWAMPolicy is P and FastWAMProcessor is Q
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("fastwam_ros.model.no_such_module")
