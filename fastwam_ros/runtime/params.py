"""One parameter schema per node: types, defaults, descriptions, validators.

The node shells declare every ROS parameter from these specs (with a ``ParameterDescriptor`` built
from :func:`descriptor_fields`), read the values back, and call :func:`validate`; the ROS-free cores
and tools read the very same YAML through :func:`load_node_parameters` + :func:`resolve`. Nothing
here imports rclpy.

Parameter names are ROS names: dotted paths (``cameras.head.topic``). A spec whose name contains a
``{placeholder}`` is a *template* expanded once per entry of the string-array parameter named by
``over`` (e.g. one ``cameras.{camera}.topic`` per entry of ``cameras``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# rcl_interfaces/msg/ParameterType constants (stable since Foxy).
PARAMETER_TYPES = {
    "bool": 1,
    "int": 2,
    "double": 3,
    "string": 4,
    "bool_array": 6,
    "int_array": 7,
    "double_array": 8,
    "string_array": 9,
}

# Parameters every ROS node may carry that belong to no schema (ignored by validate()).
ROS_STANDARD_PREFIXES = ("use_sim_time", "qos_overrides.", "diagnostic_updater.", "start_type_description_service")

_NAME_TOKEN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


class ParameterError(ValueError):
    """Raised with every validation error of a node's parameters, one per line."""

    def __init__(self, node: str, errors: list[str]):
        self.node = node
        self.errors = list(errors)
        super().__init__(f"{node}: {len(errors)} invalid parameter(s):\n  - " + "\n  - ".join(errors))


@dataclass(frozen=True)
class ParamSpec:
    """One parameter. ``check`` returns an error text (or None) for a value of the right type."""

    name: str
    type: str
    default: Any
    description: str
    choices: tuple = ()
    min: float | None = None
    max: float | None = None
    min_len: int | None = None
    length: int | None = None
    read_only: bool = False
    over: str | None = None  # template: expand over the entries of this string-array parameter
    check: Callable[[Any], str | None] | None = None

    def __post_init__(self):
        if self.type not in PARAMETER_TYPES:
            raise ValueError(f"{self.name}: unknown parameter type {self.type!r}")
        if (self.over is None) != (not _PLACEHOLDER.search(self.name)):
            raise ValueError(f"{self.name}: a template needs both a {{placeholder}} and `over`")

    @property
    def is_array(self) -> bool:
        return self.type.endswith("_array")

    def expand(self, key: str) -> ParamSpec:
        """The concrete spec for one entry of the ``over`` list."""
        name = _PLACEHOLDER.sub(key, self.name)
        default = self.default
        if isinstance(default, str):
            default = _PLACEHOLDER.sub(key, default)
        elif isinstance(default, (list, tuple)):
            default = [_PLACEHOLDER.sub(key, d) if isinstance(d, str) else d for d in default]
        desc = _PLACEHOLDER.sub(key, self.description)
        return ParamSpec(
            name=name, type=self.type, default=default, description=desc, choices=self.choices,
            min=self.min, max=self.max, min_len=self.min_len, length=self.length,
            read_only=self.read_only, over=None, check=self.check,
        )

    def constraint_text(self) -> str:
        """Human-readable constraints (for ``ParameterDescriptor.additional_constraints``)."""
        parts = []
        if self.choices:
            parts.append("one of: " + ", ".join(map(str, self.choices)))
        if self.min is not None and self.max is not None:
            parts.append(f"in [{self.min}, {self.max}]")
        elif self.min is not None:
            parts.append(f">= {self.min}")
        elif self.max is not None:
            parts.append(f"<= {self.max}")
        if self.length is not None:
            parts.append(f"exactly {self.length} entries")
        elif self.min_len is not None:
            parts.append(f"at least {self.min_len} entries")
        return "; ".join(parts)


@dataclass
class Schema:
    """The parameters of one node plus cross-field checks over the resolved values."""

    node: str
    specs: list[ParamSpec]
    cross_checks: list[Callable[[Mapping[str, Any]], Iterable[str]]] = field(default_factory=list)

    def base_specs(self) -> list[ParamSpec]:
        return [s for s in self.specs if s.over is None]

    def templates(self) -> list[ParamSpec]:
        return [s for s in self.specs if s.over is not None]

    def expanded(self, params: Mapping[str, Any]) -> list[ParamSpec]:
        """Every concrete spec, templates expanded over the (resolved) list parameters."""
        out = list(self.base_specs())
        for t in self.templates():
            keys = params.get(t.over)
            if keys is None:
                keys = next(s.default for s in self.specs if s.name == t.over)
            for k in keys:
                if isinstance(k, str) and _NAME_TOKEN.match(k):
                    out.append(t.expand(k))
        return out

    def spec(self, name: str, params: Mapping[str, Any] | None = None) -> ParamSpec:
        for s in self.expanded(params or {}):
            if s.name == name:
                return s
        raise KeyError(f"{self.node} has no parameter {name!r}")


# ---------------------------------------------------------------------------------------------------
# type checks
# ---------------------------------------------------------------------------------------------------


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_double(v) -> bool:
    return isinstance(v, float)


_ELEMENT = {"bool": lambda v: isinstance(v, bool), "int": _is_int, "double": _is_double,
            "string": lambda v: isinstance(v, str)}


def type_error(spec: ParamSpec, value: Any, *, strict: bool = True) -> str | None:
    """Error text when ``value`` does not have the ROS type of ``spec``.

    ``strict`` mirrors rclpy: an integer given for a double parameter is a type error there
    ("Wrong parameter type"), so YAML must say ``10.0``, not ``10``. With ``strict=False`` ints
    are accepted for doubles (ROS-free callers).
    """
    base = spec.type.removesuffix("_array")
    ok = _ELEMENT[base]
    if not strict and base == "double":
        def ok(v):
            return _is_double(v) or _is_int(v)
    if spec.is_array:
        if not isinstance(value, (list, tuple)):
            return f"{spec.name}: expected a list of {base}, got {type(value).__name__} {value!r}"
        bad = [v for v in value if not ok(v)]
        if bad:
            hint = " (write 1.0, not 1)" if base == "double" and all(_is_int(b) for b in bad) else ""
            return f"{spec.name}: every entry must be a {base}{hint}; bad entries: {bad!r}"
        return None
    if not ok(value):
        hint = " (write 1.0, not 1)" if base == "double" and _is_int(value) else ""
        return f"{spec.name}: expected a {base}{hint}, got {type(value).__name__} {value!r}"
    return None


def value_errors(spec: ParamSpec, value: Any) -> list[str]:
    """Range / choice / length / custom errors for a value that already has the right type."""
    errs: list[str] = []
    items = list(value) if spec.is_array else [value]
    if spec.choices:
        bad = [v for v in items if v not in spec.choices]
        if bad:
            errs.append(f"{spec.name}: {bad[0]!r} is not one of {list(spec.choices)}")
    for v in items:
        if isinstance(v, float) and not math.isfinite(v):
            errs.append(f"{spec.name}: {v!r} is not finite")
            break
        if spec.min is not None and isinstance(v, (int, float)) and not isinstance(v, bool) and v < spec.min:
            errs.append(f"{spec.name}: {v!r} is below the minimum {spec.min}")
            break
        if spec.max is not None and isinstance(v, (int, float)) and not isinstance(v, bool) and v > spec.max:
            errs.append(f"{spec.name}: {v!r} is above the maximum {spec.max}")
            break
    if spec.is_array:
        if spec.length is not None and len(value) != spec.length:
            errs.append(f"{spec.name}: needs exactly {spec.length} entries, got {len(value)}")
        if spec.min_len is not None and len(value) < spec.min_len:
            errs.append(f"{spec.name}: needs at least {spec.min_len} entries, got {len(value)}")
    if spec.check is not None and not errs:
        msg = spec.check(value)
        if msg:
            errs.append(f"{spec.name}: {msg}")
    return errs


def validate(schema: Schema, params: Mapping[str, Any], *, strict: bool = True) -> list[str]:
    """Every error in ``params`` (a flat name → value mapping, defaults already filled in).

    Unknown names are errors too (a typo in the YAML would otherwise be silently ignored).
    """
    errors: list[str] = []
    specs = schema.expanded(params)
    known = {s.name for s in specs}
    for s in specs:
        if s.name not in params:
            errors.append(f"{s.name}: missing")
            continue
        te = type_error(s, params[s.name], strict=strict)
        if te:
            errors.append(te)
            continue
        errors.extend(value_errors(s, params[s.name]))
    for name in params:
        if name not in known and not name.startswith(ROS_STANDARD_PREFIXES):
            close = [k for k in known if k.split(".")[-1] == name.split(".")[-1]]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            errors.append(f"{name}: unknown parameter{hint}")
    for t in schema.templates():
        for k in params.get(t.over, []) or []:
            if not (isinstance(k, str) and _NAME_TOKEN.match(k)):
                errors.append(f"{t.over}: entry {k!r} must be a name (letters, digits, _; starts with a letter)")
    if not errors:  # cross checks assume well-typed values
        for check in schema.cross_checks:
            errors.extend(check(params))
    return errors


def resolve(schema: Schema, overrides: Mapping[str, Any], *, strict: bool = False) -> dict[str, Any]:
    """Defaults + ``overrides`` → validated flat params; raises :class:`ParameterError`.

    Ints given for doubles are converted when ``strict`` is False (ROS-free use).
    """
    params: dict[str, Any] = {}
    for s in schema.base_specs():
        params[s.name] = overrides.get(s.name, _copy(s.default))
    for s in schema.expanded(params):
        if s.name not in params:
            params[s.name] = overrides.get(s.name, _copy(s.default))
    for k, v in overrides.items():
        params.setdefault(k, v)
    if not strict:
        for s in schema.expanded(params):
            v = params.get(s.name)
            if s.type == "double" and _is_int(v):
                params[s.name] = float(v)
            elif s.type == "double_array" and isinstance(v, (list, tuple)):
                params[s.name] = [float(x) if _is_int(x) else x for x in v]
    errors = validate(schema, params, strict=strict)
    if errors:
        raise ParameterError(schema.node, errors)
    return params


def _copy(v):
    return list(v) if isinstance(v, (list, tuple)) else v


def check_update(schema: Schema, current: Mapping[str, Any], changes: Mapping[str, Any]) -> str | None:
    """Reason to refuse a runtime parameter change (``None`` = accept).

    Used from the shells' ``add_on_set_parameters_callback``: the merged parameter set must
    still validate.
    """
    merged = dict(current)
    merged.update(changes)
    for name in changes:
        try:
            spec = schema.spec(name, merged)
        except KeyError:
            return f"{name}: unknown parameter"
        if spec.read_only:
            return f"{name}: read-only after start"
    errors = validate(schema, merged, strict=True)
    return "; ".join(errors) if errors else None


# ---------------------------------------------------------------------------------------------------
# ROS glue without ROS: descriptor fields and parameter files
# ---------------------------------------------------------------------------------------------------


def descriptor_fields(spec: ParamSpec) -> dict[str, Any]:
    """Plain fields for ``rcl_interfaces.msg.ParameterDescriptor`` (the shell builds the message).

    ``floating_point_range`` / ``integer_range`` are ``(from, to)`` tuples or None; ROS only
    supports closed ranges, so one-sided bounds stay in ``additional_constraints`` (and in
    :func:`validate`).
    """
    fp_range = int_range = None
    if spec.min is not None and spec.max is not None:
        if spec.type in ("double", "double_array"):
            fp_range = (float(spec.min), float(spec.max))
        elif spec.type in ("int", "int_array"):
            int_range = (int(spec.min), int(spec.max))
    return {
        "name": spec.name,
        "type": PARAMETER_TYPES[spec.type],
        "description": spec.description,
        "additional_constraints": spec.constraint_text(),
        "read_only": spec.read_only,
        "floating_point_range": fp_range,
        "integer_range": int_range,
    }


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested YAML mapping → dotted ROS parameter names (what rcl does with parameter files)."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        name = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(flatten(v, name))
        else:
            out[name] = v
    return out


def _node_key_matches(key: str, node_name: str, namespace: str) -> bool:
    """rcl parameter-file node keys: ``/**``, ``/**/name``, ``name``, ``/ns/name``, ``ns/name``."""
    fqn = (namespace.rstrip("/") + "/" + node_name) if namespace not in ("", "/") else "/" + node_name
    if not key.startswith("/"):
        key = "/" + key
    pattern = re.escape(key).replace(r"/\*\*", r"(/[^/]+)*").replace(r"\*", r"[^/]+")
    return re.fullmatch(pattern, fqn) is not None


def load_node_parameters(path: str | Path, node_name: str, namespace: str = "/") -> dict[str, Any]:
    """The flat parameters a node named ``node_name`` would get from a ROS 2 parameter file.

    Later matching sections override earlier ones (as rcl merges them).
    """
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f) or {}
    if not isinstance(doc, Mapping):
        raise ValueError(f"{path}: a ROS 2 parameter file is a mapping of node names")
    out: dict[str, Any] = {}
    for key, section in doc.items():
        if not isinstance(section, Mapping) or "ros__parameters" not in section:
            raise ValueError(f"{path}: section {key!r} needs a `ros__parameters:` mapping")
        if _node_key_matches(str(key), node_name, namespace):
            out.update(flatten(section["ros__parameters"] or {}))
    return out


def load_resolved(schema: Schema, path: str | Path, *, namespace: str = "/", strict: bool = True,
                  extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read ``schema.node``'s section of a parameter file, fill defaults, validate."""
    overrides = load_node_parameters(path, schema.node, namespace)
    if extra:
        overrides.update(extra)
    return resolve(schema, overrides, strict=strict)
