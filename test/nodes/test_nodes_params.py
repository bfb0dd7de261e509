"""Parameter schema machinery: types as rclpy sees them, templates, validation, parameter files."""

from __future__ import annotations

import pytest

from fastwam_ros.runtime.params import (
    PARAMETER_TYPES,
    ParameterError,
    ParamSpec,
    Schema,
    check_update,
    descriptor_fields,
    flatten,
    load_node_parameters,
    resolve,
    validate,
)


def _schema():
    return Schema(
        node="demo_node",
        specs=[
            ParamSpec("rate_hz", "double", 10.0, "Rate, Hz.", min=0.1, max=1000.0),
            ParamSpec("mode", "string", "a", "Mode.", choices=("a", "b")),
            ParamSpec("names", "string_array", ["x", "y"], "Names.", min_len=1, read_only=True),
            ParamSpec("names.{name}.topic", "string", "in/{name}", "Topic of {name}.", over="names"),
            ParamSpec("gains", "double_array", [1.0, 2.0], "Gains.", length=2),
            ParamSpec("count", "int", 3, "Count.", min=0),
        ],
        cross_checks=[lambda p: ["mode b needs count > 3"] if p["mode"] == "b" and p["count"] <= 3 else []],
    )


def test_defaults_resolve_and_templates_expand():
    p = resolve(_schema(), {})
    assert p["names.x.topic"] == "in/x" and p["names.y.topic"] == "in/y"
    p = resolve(_schema(), {"names": ["cam"], "names.cam.topic": "/t"})
    assert p["names.cam.topic"] == "/t" and "names.x.topic" not in p


def test_int_for_double_is_a_type_error_like_rclpy():
    errs = validate(_schema(), {**resolve(_schema(), {}), "rate_hz": 10}, strict=True)
    assert any("rate_hz" in e and "1.0, not 1" in e for e in errs)
    # ROS-free callers may be lenient
    assert resolve(_schema(), {"rate_hz": 10})["rate_hz"] == 10.0


@pytest.mark.parametrize(
    "override, fragment",
    [
        ({"rate_hz": 0.0}, "below the minimum"),
        ({"rate_hz": float("nan")}, "not finite"),
        ({"mode": "c"}, "not one of"),
        ({"gains": [1.0]}, "exactly 2"),
        ({"names": []}, "at least 1"),
        ({"names": ["bad name"]}, "must be a name"),
        ({"count": True}, "expected a int"),
        ({"typo_param": 1}, "unknown parameter"),
        ({"mode": "b"}, "count > 3"),
    ],
)
def test_invalid_values_give_clear_errors(override, fragment):
    with pytest.raises(ParameterError) as ei:
        resolve(_schema(), override)
    assert any(fragment in e for e in ei.value.errors), ei.value.errors


def test_check_update_rejects_read_only_and_invalid():
    cur = resolve(_schema(), {})
    assert check_update(_schema(), cur, {"rate_hz": 20.0}) is None
    assert "read-only" in check_update(_schema(), cur, {"names": ["z"]})
    assert "below" in check_update(_schema(), cur, {"rate_hz": -1.0})
    assert "unknown" in check_update(_schema(), cur, {"nope": 1.0})


def test_descriptor_fields():
    s = _schema()
    d = descriptor_fields(s.spec("rate_hz"))
    assert d["type"] == PARAMETER_TYPES["double"] == 3
    assert d["floating_point_range"] == (0.1, 1000.0) and d["integer_range"] is None
    d = descriptor_fields(s.spec("count"))
    assert d["integer_range"] is None and ">= 0" in d["additional_constraints"]
    assert descriptor_fields(s.spec("names"))["read_only"] is True
    assert "one of: a, b" in descriptor_fields(s.spec("mode"))["additional_constraints"]


def test_template_spec_needs_over():
    with pytest.raises(ValueError):
        ParamSpec("a.{x}.b", "string", "", "bad")


def test_flatten_and_node_sections(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text(
        "/**:\n  ros__parameters:\n    use_sim_time: false\n    count: 1\n"
        "/**/demo_node:\n  ros__parameters:\n    count: 5\n    names:\n      x:\n        topic: /a\n"
        "other_node:\n  ros__parameters:\n    count: 9\n"
    )
    p = load_node_parameters(f, "demo_node", "/robot1")
    assert p == {"use_sim_time": False, "count": 5, "names.x.topic": "/a"}
    assert load_node_parameters(f, "other_node")["count"] == 9
    assert load_node_parameters(f, "other_node", "/ns")["count"] == 1  # `other_node` is /other_node only
    assert flatten({"a": {"b": {"c": 1}}}) == {"a.b.c": 1}
    bad = tmp_path / "bad.yaml"
    bad.write_text("demo_node:\n  count: 1\n")
    with pytest.raises(ValueError, match="ros__parameters"):
        load_node_parameters(bad, "demo_node")
