#!/usr/bin/env bash
# Mutation testing of the safety core (README, "Reliability"): mutmut 3 mutates the controller's limiter,
# plan/splice, watchdog, e-stop/enable logic and the runtime's chunk validation, and runs, for each mutant,
# only the tests that execute the mutated function (mutmut's per-function test selection), with the
# property tests drawing a fixed, reduced set of examples.
#
#   scripts/mutation_safety.sh                 # all five modules (~3,400 mutants: hours on 2 busy cores; BUDGET_S stops it)
#   scripts/mutation_safety.sh limits watchdog chunks  # the scored modules (see README for figures)
#   scripts/mutation_safety.sh smoke           # the braking tail only (~50 mutants; a few minutes, mostly generating)
#   SAMPLE=200 scripts/mutation_safety.sh plan controller  # a seeded random sample of 200 mutants per module
#
# Needs: pip install -e ".[mutation]". Results: `mutmut results`, `mutmut show <mutant>`; survivors that are
# equivalent (same behaviour) are listed with reasons in test/control/mutation_equivalents.md.
# Env: PYTHON (interpreter, default python3), JOBS (parallel mutants, default 2), BUDGET_S (default 1800),
# KEEP=1 (reuse mutants/ from the last run), SAMPLE=N (score a random sample of N mutants per module, SEED
# default 21: an unbiased estimate when the whole module does not fit the time). Exact mutant names may be
# given instead of modules.
set -euo pipefail
set -f  # mutant name patterns are for mutmut, not for the shell
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
JOBS="${JOBS:-2}"
BUDGET_S="${BUDGET_S:-1800}"
export FASTWAM_MUTATION=1 FASTWAM_PROPERTY_SCALE="${FASTWAM_PROPERTY_SCALE:-0.01}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

declare -A PAT=(
  [limits]="fastwam_ros.control.limits.*"
  [plan]="fastwam_ros.control.plan.*"
  [watchdog]="fastwam_ros.control.watchdog.*"
  [controller]="fastwam_ros.control.controller.*"
  [chunks]="fastwam_ros.runtime.chunks.x__chunk_rows__mutmut_* fastwam_ros.runtime.chunks.x_parse_chunk__mutmut_* fastwam_ros.runtime.chunks.x_parse_chunk_counted__mutmut_*"
  [smoke]="fastwam_ros.control.limits.x_braking_tail__mutmut_*"
)
mods=("$@")
[ ${#mods[@]} -eq 0 ] && mods=(limits plan watchdog controller chunks)
names=()
for m in "${mods[@]}"; do
  if [[ "$m" == fastwam_ros.* ]]; then names+=("$m"); continue; fi
  [ -n "${PAT[$m]:-}" ] || { echo "unknown module '$m' (limits plan watchdog controller chunks smoke)" >&2; exit 2; }
  # shellcheck disable=SC2206
  names+=(${PAT[$m]})
done
[ "${mods[0]}" = smoke ] && BUDGET_S=600
if [ -n "${SAMPLE:-}" ]; then
  # the names mutmut will generate (its own generator), then a seeded sample of each module's matching ones
  mapfile -t names < <("$PY" - "${SAMPLE}" "${SEED:-21}" "${names[@]}" <<'PYEOF'
import fnmatch
import random
import sys
from pathlib import Path

from mutmut.mutation.file_mutation import mutate_file_contents

n, seed, pats = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
for mod in sorted({p.split(".x", 1)[0].rstrip(".*") for p in pats}):
    rng = random.Random(f"{seed}/{mod}")  # per module: a module's sample does not depend on the others
    path = Path(*mod.split(".")).with_suffix(".py")
    every = [f"{mod}.{m}" for m in mutate_file_contents(str(path), path.read_text(encoding="utf-8")).mutant_names]
    mine = [x for x in every if any(fnmatch.fnmatch(x, p) for p in pats)]
    print("\n".join(sorted(rng.sample(mine, min(n, len(mine))))))
PYEOF
  )
  echo "sampled ${#names[@]} mutants (SAMPLE=${SAMPLE} per module, SEED=${SEED:-21})"
fi
# a fresh copy of the sources and tests (~3 min to generate every mutant); KEEP=1 reuses mutants/ (mutmut
# regenerates the functions whose source changed and re-copies test/), e.g. to rerun named mutants
[ "${KEEP:-0}" = 1 ] || rm -rf mutants
start=$(date +%s)
set +e
timeout "$BUDGET_S" "$PY" -m mutmut run --max-children "$JOBS" "${names[@]}"
rc=$?
set -e
echo "mutation run: $(( $(date +%s) - start )) s, exit $rc (124: budget ${BUDGET_S} s reached)"
"$PY" - "${names[@]}" <<'PYEOF'
"""Per-module score of the mutants just run: killed (a test failed, timed out or crashed) / all run."""
import fnmatch
import json
import re
import sys
from pathlib import Path

from mutmut.stats import status_by_exit_code

pats = sys.argv[1:]
# survivors justified in the equivalents file: a row names `x…__mutmut_N` and possibly more numbers `_M`
listed = set()
for row in Path("test/control/mutation_equivalents.md").read_text(encoding="utf-8").splitlines():
    first = row.split("|")[1] if row.count("|") > 2 else ""
    for base, num in re.findall(r"`(\S+__mutmut_)(\d+)`", first):
        listed |= {base + num} | {base + n for n in re.findall(r"`_(\d+)`", first)}
per = {}
for meta in Path("mutants").rglob("*.meta"):
    for name, code in json.loads(meta.read_text()).get("exit_code_by_key", {}).items():
        if any(fnmatch.fnmatch(name, p) for p in pats):
            s = per.setdefault(name.split(".x")[0], {"n": 0, "killed": 0, "left": [], "not_run": 0})
            if code is None:  # not reached (budget) or not in the sample
                s["not_run"] += 1
                continue
            status = status_by_exit_code[code]
            s["n"] += 1
            if status in ("killed", "timeout", "segfault", "caught by type check"):
                s["killed"] += 1
            else:
                short = name.rsplit(".", 1)[1]
                s["left"].append(f"{name} ({status}{', listed as equivalent' if short in listed else ', NOT LISTED'})")
for mod, s in sorted(per.items()):
    print(f"{mod}: {s['killed']}/{s['n']} killed ({100.0 * s['killed'] / max(s['n'], 1):.1f} %)"
          + (f", {s['not_run']} not run" if s["not_run"] else ""))
    for x in sorted(s["left"]):
        print("   ", x)
PYEOF
exit $rc
