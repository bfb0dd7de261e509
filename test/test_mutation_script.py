"""scripts/mutation_safety.py: which listed equivalents are carried (not re-run) and which must run again.

A listed equivalent may only be skipped while its function's source is the one it was triaged on; any edit to
that function (mutmut renumbers its mutants) must make its listed mutants run again."""

from __future__ import annotations

import pytest

from conftest import load_script

SRC = '''
def f(x):
    return x + 1


class C:
    def m(self, y):
        return y * 2
'''

TABLE = """| mutant | change | why |
|---|---|---|
| `x_f__mutmut_1`, `_3` | a | b |
| `xǁCǁm__mutmut_2` | a | b |
| `x_f__mutmut_5`, `xǁCǁm__mutmut_4`, `_6` | a | b |
| not a name | `x_f__mutmut_9` in another column | b |
"""


@pytest.fixture
def ms(tmp_path, monkeypatch):
    mod = load_script("scripts/mutation_safety.py", "mutation_safety_under_test")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text(SRC, encoding="utf-8")
    (tmp_path / "eq.md").write_text(TABLE, encoding="utf-8")
    monkeypatch.setattr(mod, "ROOT", tmp_path)
    monkeypatch.setattr(mod, "EQUIVALENTS", tmp_path / "eq.md")
    monkeypatch.setattr(mod, "TRIAGE", tmp_path / "triage.json")
    monkeypatch.setattr(mod, "SCOPE", ("pkg.mod",))
    return mod


def test_the_first_column_lists_names_and_extra_numbers(ms):
    # an extra number belongs to the function named last before it (`_6` is m's, not f's)
    assert ms.listed_equivalents() == {"x_f__mutmut_1", "x_f__mutmut_3", "xǁCǁm__mutmut_2", "x_f__mutmut_5",
                                       "xǁCǁm__mutmut_4", "xǁCǁm__mutmut_6"}


def test_function_sources_use_mutmut_mangled_names(ms):
    src = ms.function_sources("pkg.mod")
    assert set(src) == {"x_f", "xǁCǁm"}
    assert src["xǁCǁm"].startswith("def m(self, y)")


def test_nothing_is_carried_before_a_triage_is_recorded(ms):
    names = ["pkg.mod.x_f__mutmut_1", "pkg.mod.x_f__mutmut_2", "pkg.mod.xǁCǁm__mutmut_2"]
    assert ms.carried(names) == set()


def test_listed_mutants_of_unchanged_functions_are_carried_and_of_changed_ones_run_again(ms, tmp_path):
    names = ["pkg.mod.x_f__mutmut_1", "pkg.mod.x_f__mutmut_2", "pkg.mod.x_f__mutmut_3", "pkg.mod.xǁCǁm__mutmut_2"]
    ms.cmd_fingerprint(None)
    # only listed names are carried, never an unlisted one of the same function
    assert ms.carried(names) == {"pkg.mod.x_f__mutmut_1", "pkg.mod.x_f__mutmut_3", "pkg.mod.xǁCǁm__mutmut_2"}
    # editing one function (even only a constant) makes its listed mutants run again; the other stays carried
    (tmp_path / "pkg" / "mod.py").write_text(SRC.replace("y * 2", "y * 3"), encoding="utf-8")
    assert ms.carried(names) == {"pkg.mod.x_f__mutmut_1", "pkg.mod.x_f__mutmut_3"}
