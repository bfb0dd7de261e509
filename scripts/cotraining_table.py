#!/usr/bin/env python3
"""The co-training table: Fast-WAM trained with video co-training (lambda_video = 1) and without (lambda_video = 0),
and optionally the Joint and IDM variants, on the same demonstrations with the same budget, each evaluated with
fastwam-eval on the same seeds.

    python scripts/make_demo_data.py --out outputs/demo_data --episodes 320 --perturb 0.08 --modes kinematic
    python scripts/cotraining_table.py --data outputs/demo_data --variants joint idm --parallel --episodes 20 --seed 0

Trains one policy per arm with scripts/make_demo_checkpoint.py (into ``--out``/lambda_<v> or ``--out``/<variant>,
one process each,
``--parallel`` runs them side by side on one torch thread each), evaluates each with
:func:`fastwam_ros.eval.run_eval` (kinematic sim, seeds ``seed .. seed+episodes-1``) and prints a Markdown table of
success rates with 95 % Wilson intervals; ``table.md`` and ``table.json`` are written to ``--out``.
``--policies`` skips training and evaluates existing policy directories (``label=path`` pairs).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def train_arms(args: argparse.Namespace, out: Path) -> dict[str, Path]:
    """Train every arm (each lambda_video, then each --variants entry; same data, steps, batch, seed); returns
    label -> policy directory. The VAE
    latents (the same for every arm) are encoded once first, by two processes, into --out/latents."""
    script = str(REPO / "scripts" / "make_demo_checkpoint.py")
    latents = out / "latents"
    pre = [subprocess.Popen([sys.executable, script, "--data", args.data, "--out", str(out / "unused"), "--work",
                             str(out / f"prefill_{i}"), "--latent-cache", str(latents), "--prefill-only",
                             "--prefill-part", f"{i}/2", "--window-stride", str(args.window_stride)])
           for i in range(2)]
    if any(p.wait() for p in pre):
        raise SystemExit("encoding the latent cache failed")
    procs, dirs = [], {}
    arms = [("fastwam", lam) for lam in args.lambdas] + [(v, 1.0) for v in args.variants]
    for variant, lam in arms:
        label = f"lambda_video={lam:g}" if variant == "fastwam" else f"variant={variant}"
        d = out / (f"lambda_{lam:g}" if variant == "fastwam" else variant)
        cmd = [sys.executable, script, "--data", args.data, "--out", str(d / "policy"), "--work", str(d / "work"),
               "--latent-cache", str(latents), "--steps", str(args.steps), "--batch-size",
               str(args.batch_size), "--lambda-video", str(lam), "--threads", "1", "--seed", str(args.train_seed),
               "--window-stride", str(args.window_stride), "--variant", variant, "--no-closed-loop"]
        d.mkdir(parents=True, exist_ok=True)
        log = open(d / "train.log", "w")
        print(f"training {label}: {' '.join(cmd)}", flush=True)
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        if args.parallel:
            procs.append((label, p, log))
        else:
            rc = p.wait()
            log.close()
            if rc:
                raise SystemExit(f"training {label} failed (rc {rc}); see {d / 'train.log'}")
        dirs[label] = d / "policy"
    for label, p, log in procs:
        rc = p.wait()
        log.close()
        if rc:
            raise SystemExit(f"training {label} failed (rc {rc})")
    return dirs


def table(rows: list[dict]) -> str:
    lines = ["| policy | success (95 % CI) | mean final fold fraction | clamped ticks | train steps |",
             "|---|---|---|---|---|"]
    for r in rows:
        s = r["summary"]
        lo, hi = s["success_rate_ci95"]
        lines.append(f"| {r['label']} | {100 * s['success_rate']:.0f} % ({s['successes']}/{s['episodes']}; "
                     f"{100 * lo:.0f}-{100 * hi:.0f} %) | {s['fold_fraction_final_mean']:.2f} | "
                     f"{100 * s['clamped_tick_fraction_mean']:.1f} % | {r['steps']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="outputs/demo_data", help="dataset from make_demo_data.py")
    ap.add_argument("--out", default="outputs/cotraining", help="output folder (default: %(default)s)")
    ap.add_argument("--lambdas", type=float, nargs="+", default=[1.0, 0.0], help="lambda_video values")
    ap.add_argument("--variants", nargs="*", default=[], choices=("joint", "idm"),
                    help="also train these variants (Fast-WAM-Joint / -IDM, lambda_video 1), same data and budget")
    ap.add_argument("--steps", type=int, default=12000, help="optimizer steps per arm (default: %(default)s)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--train-seed", type=int, default=0)
    ap.add_argument("--window-stride", type=int, default=10,
                    help="training windows start every k-th tick (as make_demo_checkpoint.py; default %(default)s)")
    ap.add_argument("--parallel", action="store_true", help="train the arms side by side (one thread each)")
    ap.add_argument("--policies", nargs="*", default=None,
                    help="label=policy_dir pairs to evaluate instead of training (e.g. 'lambda_video=1=models/demo')")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse an arm's --out/eval/<label>/eval.json when it evaluated the same policy on the same seeds")
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from fastwam_ros.eval import run_eval

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.policies:
        dirs = {p.rsplit("=", 1)[0]: Path(p.rsplit("=", 1)[1]) for p in args.policies}
    else:
        dirs = train_arms(args, out)
    rows = []
    seeds = list(range(args.seed, args.seed + args.episodes))
    for label, d in dirs.items():
        ev_dir = out / "eval" / label.replace("=", "_")
        old = json.loads((ev_dir / "eval.json").read_text()) if (ev_dir / "eval.json").is_file() else None
        if args.reuse and old and old["policy"] == str(d) and old["seeds"] == seeds:
            r = old
        else:
            r = run_eval(str(d), episodes=args.episodes, seed=args.seed, out_dir=ev_dir)
        meta = json.loads((d / "meta.json").read_text()) if (d / "meta.json").is_file() else {}
        steps = meta.get("train_steps", "?")
        rows.append({"label": label, "policy": str(d), "steps": steps, "summary": r["summary"]})
        print(f"{label}: success {100 * r['summary']['success_rate']:.0f} %", flush=True)
    text = table(rows)
    note = (f"\nSame data ({args.data}), same seeds ({args.seed}..{args.seed + args.episodes - 1}), "
            "kinematic sim, fastwam-eval defaults.\n")
    (out / "table.md").write_text(text + "\n" + note)
    (out / "table.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(text + "\n" + note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
