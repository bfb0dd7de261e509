#!/usr/bin/env python3
"""The Python half of ``scripts/mutation_safety.sh``: which mutants to run, and the per-module report.

Mutants that survive and are *equivalent* (the program behaves the same) are listed one by one, with the reason,
in ``test/control/mutation_equivalents.md``. Re-running them can only confirm that they survive, and a surviving
mutant is the expensive kind (it runs every test of its function, 5-25 s under mutmut, against < 1 s for a killed
one). So a listed mutant is **carried** -- counted as a listed survivor without being run -- when its function's
source is byte-for-byte the one it was triaged on: ``test/control/mutation_triage.json`` keeps a SHA-256 of every
such function's source (``fingerprint`` below writes it after a triage). mutmut numbers a function's mutants by
position in that source, so an unchanged function means the same edit under the same name; a changed function
(or a missing fingerprint) makes its listed mutants run again, and any that survive are reported as *changed
since triage* (to re-check). ``FULL=1`` runs every mutant regardless.

    python scripts/mutation_safety.py names [--full] [--sample N --seed S] PATTERN...   # names to run (stdout)
    python scripts/mutation_safety.py report PATTERN...     # per-module score after `mutmut run`
    python scripts/mutation_safety.py fingerprint           # record the listed mutants' functions as triaged
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import hashlib
import json
import os
import random
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENTS = ROOT / "test" / "control" / "mutation_equivalents.md"
TRIAGE = ROOT / "test" / "control" / "mutation_triage.json"
SCOPE = ("fastwam_ros.control.controller", "fastwam_ros.control.limits", "fastwam_ros.control.plan",
         "fastwam_ros.control.watchdog", "fastwam_ros.runtime.chunks")  # the modules setup.cfg [mutmut] mutates
KILLED = ("killed", "timeout", "segfault", "caught by type check")


def listed_equivalents(path: Path | None = None) -> set[str]:
    """Short mutant names (``x…__mutmut_N``) listed in the first column of the equivalents tables.

    A row names ``x…__mutmut_N`` and possibly more numbers `` `_M` `` of the function named last before them."""
    listed: set[str] = set()
    for row in (path or EQUIVALENTS).read_text(encoding="utf-8").splitlines():
        first = row.split("|")[1] if row.count("|") > 2 else ""
        base = None
        for full, num, more in re.findall(r"`(\S+__mutmut_)(\d+)`|`_(\d+)`", first):
            if full:
                base = full
                listed.add(full + num)
            elif base is not None:
                listed.add(base + more)
    return listed


def module_of(name: str) -> str:
    """``fastwam_ros.control.plan.xǁSourceǁeval__mutmut_3`` -> ``fastwam_ros.control.plan``."""
    return name.split(".x", 1)[0].rstrip(".*")


def function_of(short: str) -> str:
    """``xǁSourceǁeval__mutmut_3`` -> ``xǁSourceǁeval`` (mutmut's mangled function name)."""
    return short.split("__mutmut_", 1)[0]


def function_sources(module: str) -> dict[str, str]:
    """Mangled name (mutmut's: ``x_func``, ``xǁClassǁmethod``) -> exact source text of each function."""
    path = ROOT / Path(*module.split(".")).with_suffix(".py")
    src = path.read_text(encoding="utf-8")
    out: dict[str, str] = {}
    for node in ast.parse(src).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out[f"x_{node.name}"] = ast.get_source_segment(src, node) or ""
        elif isinstance(node, ast.ClassDef):
            for sub in node.body:
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    out[f"xǁ{node.name}ǁ{sub.name}"] = ast.get_source_segment(src, sub) or ""
    return out


def fingerprints(module: str) -> dict[str, str]:
    return {f: hashlib.sha256(s.encode("utf-8")).hexdigest() for f, s in function_sources(module).items()}


def load_triage() -> dict[str, str]:
    return json.loads(TRIAGE.read_text(encoding="utf-8")) if TRIAGE.exists() else {}


def carried(names: list[str]) -> set[str]:
    """The listed equivalents among ``names`` whose function is unchanged since triage (not to be re-run)."""
    listed, triage = listed_equivalents(), load_triage()
    prints: dict[str, dict[str, str]] = {}
    out = set()
    for name in names:
        short = name.rsplit(".", 1)[1]
        if short not in listed:
            continue
        mod = module_of(name)
        if mod not in prints:  # one parse per module, not per listed name
            prints[mod] = fingerprints(mod)
        fp = prints[mod]
        key = f"{mod}.{function_of(short)}"
        if key in triage and fp.get(function_of(short)) == triage[key]:
            out.add(name)
    return out


def _generated(mod: str) -> list[str]:
    from mutmut.mutation.file_mutation import mutate_file_contents  # noqa: PLC0415 - the dev extra

    path = ROOT / Path(*mod.split(".")).with_suffix(".py")
    return [f"{mod}.{m}" for m in mutate_file_contents(str(path), path.read_text(encoding="utf-8")).mutant_names]


def every_mutant(patterns: list[str]) -> list[str]:
    """All mutant names mutmut generates for the modules the patterns name (its own generator, one process per
    module: ~1 min for the whole scope), filtered by the patterns."""
    mods = sorted({module_of(p) for p in patterns})
    with ProcessPoolExecutor(max_workers=min(len(mods), os.cpu_count() or 1)) as pool:
        gen = [n for names in pool.map(_generated, mods) for n in names]
    return [n for n in gen if any(fnmatch.fnmatch(n, p) for p in patterns)]


def cmd_names(args: argparse.Namespace) -> int:
    names = every_mutant(args.patterns)
    if args.sample:
        picked = []
        for mod in sorted({module_of(n) for n in names}):
            rng = random.Random(f"{args.seed}/{mod}")  # per module: a module's sample does not depend on the others
            mine = sorted(n for n in names if module_of(n) == mod)
            picked += sorted(rng.sample(mine, min(args.sample, len(mine))))
        names = picked
    skip = set() if args.full else carried(names)
    print(f"{len(names)} mutants; {len(skip)} listed equivalents carried (function unchanged since triage, "
          f"not re-run); {len(names) - len(skip)} to run", file=sys.stderr)
    print("\n".join(n for n in names if n not in skip))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from mutmut.stats import status_by_exit_code  # noqa: PLC0415 - the dev extra

    # mutmut's .meta files name every mutant it generated (None: not run), so they give the patterns' mutants
    # without generating them again
    results = {name: code for meta in (ROOT / "mutants").rglob("*.meta")
               for name, code in json.loads(meta.read_text(encoding="utf-8")).get("exit_code_by_key", {}).items()
               if any(fnmatch.fnmatch(name, p) for p in args.patterns)}
    listed, skip = listed_equivalents(), carried(sorted(results))
    per: dict[str, dict] = {}
    for name, code in results.items():
        s = per.setdefault(module_of(name), {"n": 0, "killed": 0, "carried": 0, "listed": 0, "not_run": 0,
                                             "left": []})
        short = name.rsplit(".", 1)[1]
        if code is None:
            if name in skip:
                s["n"] += 1
                s["carried"] += 1
            else:
                s["not_run"] += 1  # budget reached, or not in the sample
            continue
        s["n"] += 1
        status = status_by_exit_code[code]
        if status in KILLED:
            s["killed"] += 1
        elif name in skip:  # listed, and its function is the one it was triaged on
            s["listed"] += 1
        elif short in listed:
            s["left"].append(f"{name} ({status}, listed as equivalent; function changed since triage or "
                             "not fingerprinted: re-check the row)")
        else:
            s["left"].append(f"{name} ({status}, NOT LISTED)")
    tot = {"n": 0, "killed": 0, "carried": 0, "listed": 0, "left": 0}
    for mod, s in sorted(per.items()):
        print(f"{mod}: {s['killed']}/{s['n']} killed ({100.0 * s['killed'] / max(s['n'], 1):.1f} %); "
              f"{s['carried'] + s['listed']} listed as equivalent ({s['carried']} carried, not re-run)"
              + (f"; {s['not_run']} not run" if s["not_run"] else ""))
        for x in sorted(s["left"]):
            print("   ", x)
        for k in ("n", "killed", "carried", "listed"):
            tot[k] += s[k]
        tot["left"] += len(s["left"])
    print(f"all: {tot['killed']}/{tot['n']} killed ({100.0 * tot['killed'] / max(tot['n'], 1):.1f} %); "
          f"{tot['carried'] + tot['listed']} listed as equivalent ({tot['carried']} carried, not re-run); "
          f"{tot['left']} survivors not justified")
    return 0


def cmd_fingerprint(args: argparse.Namespace) -> int:
    """Record the source fingerprint of every function that has a listed equivalent (after a triage)."""
    listed = listed_equivalents()
    out = {}
    for mod in SCOPE:
        fp = fingerprints(mod)
        for short in sorted(listed):
            f = function_of(short)
            if f in fp:
                out[f"{mod}.{f}"] = fp[f]
    unknown = sorted({function_of(s) for s in listed} - {k.rsplit(".", 1)[1] for k in out})
    TRIAGE.write_text(json.dumps(out, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(out)} functions fingerprinted in {TRIAGE.relative_to(ROOT)}"
          + (f"; listed names whose function no longer exists: {unknown}" if unknown else ""))
    return 1 if unknown else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    n = sub.add_parser("names")
    n.add_argument("--full", action="store_true", help="run listed equivalents too")
    n.add_argument("--sample", type=int, default=0)
    n.add_argument("--seed", default="21")
    n.add_argument("patterns", nargs="+")
    r = sub.add_parser("report")
    r.add_argument("patterns", nargs="+")
    sub.add_parser("fingerprint")
    args = ap.parse_args(argv)
    return {"names": cmd_names, "report": cmd_report, "fingerprint": cmd_fingerprint}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
