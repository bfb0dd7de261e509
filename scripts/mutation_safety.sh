#!/usr/bin/env bash
# Mutation testing of the safety core (README, "Reliability"): mutmut 3 mutates the controller's limiter,
# plan/splice, watchdog, e-stop/enable logic and the runtime's chunk validation, and runs, for each mutant,
# only the tests that execute the mutated function (mutmut's per-function test selection), fastest first,
# with the property tests drawing a fixed, reduced set of examples.
#
#   scripts/mutation_safety.sh                 # the whole scope (5 modules, ~4,300 mutants)
#   scripts/mutation_safety.sh limits watchdog chunks  # some modules
#   scripts/mutation_safety.sh smoke           # the braking tail only (~50 mutants; a few minutes)
#   SAMPLE=200 scripts/mutation_safety.sh plan controller  # a seeded random sample of 200 mutants per module
#   KEEP=1 scripts/mutation_safety.sh fastwam_ros.control.plan.x_eval_pv__mutmut_6 ...  # named mutants, always run
#
# Survivors that are equivalent (same behaviour) are listed one by one with the reason in
# test/control/mutation_equivalents.md. A listed mutant whose function is byte-for-byte the one it was triaged on
# (SHA-256 in test/control/mutation_triage.json) is *carried*: counted as a listed survivor without being run
# (a survivor is the costly kind: every test of its function, 5-25 s); FULL=1 runs those too. After a triage,
# `python scripts/mutation_safety.py fingerprint` records the functions. See scripts/mutation_safety.py.
#
# Needs: pip install -e ".[mutation]". Results: `mutmut results`, `mutmut show <mutant>`.
# Env: PYTHON (interpreter, default python3), JOBS (parallel mutants, default 2), BUDGET_S (default 1800),
# KEEP=1 (reuse mutants/ from the last run), FULL=1, SAMPLE=N (SEED default 21: an unbiased estimate of a
# module's score when the whole module does not fit the time).
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
explicit=1
for n in "${names[@]}"; do [[ "$n" == *"__mutmut_"*"*"* || "$n" != *"__mutmut_"* ]] && explicit=0; done
if [ "$explicit" = 0 ]; then
  # every mutant of the patterns (mutmut's own generator), less the carried listed equivalents (or a sample)
  args=()
  [ "${FULL:-0}" = 1 ] && args+=(--full)
  [ -n "${SAMPLE:-}" ] && args+=(--sample "$SAMPLE" --seed "${SEED:-21}")
  mapfile -t run_names < <("$PY" scripts/mutation_safety.py names "${args[@]}" "${names[@]}")
else
  run_names=("${names[@]}")
fi
# a fresh copy of the sources and tests (~3 min to generate every mutant); KEEP=1 reuses mutants/ (mutmut
# regenerates the functions whose source changed and re-copies test/), e.g. to rerun named mutants
[ "${KEEP:-0}" = 1 ] || rm -rf mutants
start=$(date +%s)
set +e
timeout "$BUDGET_S" "$PY" -m mutmut run --max-children "$JOBS" "${run_names[@]}"
rc=$?
set -e
echo "mutation run: $(( $(date +%s) - start )) s, exit $rc (124: budget ${BUDGET_S} s reached)"
"$PY" scripts/mutation_safety.py report "${names[@]}"
exit $rc
