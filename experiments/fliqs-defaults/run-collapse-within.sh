#!/usr/bin/env bash
# Experiment fliqs-defaults, fourth round: the leave-one-out baseline and the entropy term held
# until the argmax meets its target (search.fliqs baseline, collapse_within), against FLIQS's
# own dynamics (Ema, None), at the other defaults.
#
#   bash experiments/fliqs-defaults/run-collapse-within.sh [TRAINED_RUN]
#
# 1. The controller alone (examples/fliqs_convergence, seconds): both synthetic tables (decade,
#    saturating), targets 0.05-0.5, 16 seeds, FLIQS's dynamics then the new defaults, then each
#    of the two mechanisms alone (ablation.txt).
# 2. With TRAINED_RUN (a run folder after `qnas run spaces/presets/mnist.ron`): FLIQS at its
#    default settings on a copy of it for the targets 0.1, 0.25 and 0.5 (about 20 minutes on 2
#    cores), and each argmax against the run's NSGA-II front.
# Results go to results-collapse-within/ next to this file.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=experiments/fliqs-defaults
out=${OUT:-$here/results-collapse-within}
mkdir -p "$out"
cargo build --release --locked -p qnas-search --example fliqs_convergence
sim=target/release/examples/fliqs_convergence
{
    echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with uncommitted changes)')"
    echo "started: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$out/machine.txt"
: > "$out/synthetic.txt"
for table in decade saturating; do
    for t in 0.05 0.1 0.25 0.5; do
        $sim spaces/presets/mnist.ron "$t" 300 0.2 0.1 4 16 table=$table baseline=Ema collapse_within=None >> "$out/synthetic.txt"
        $sim spaces/presets/mnist.ron "$t" 300 0.2 0.1 4 16 table=$table >> "$out/synthetic.txt"
    done
done
grep -E '^(steps|summary)' "$out/synthetic.txt" > "$out/synthetic-summary.txt"
# each mechanism alone
: > "$out/ablation.txt"
for table in decade saturating; do
    for t in 0.05 0.1 0.25 0.5; do
        $sim spaces/presets/mnist.ron "$t" 300 0.2 0.1 4 16 table=$table collapse_within=None >> "$out/ablation.txt"
        $sim spaces/presets/mnist.ron "$t" 300 0.2 0.1 4 16 table=$table baseline=Ema >> "$out/ablation.txt"
    done
done
grep -E '^(steps|summary)' "$out/ablation.txt" > "$out/ablation-summary.txt"
[ $# -ge 1 ] || exit 0
trained=$1
cargo build --release --locked --bin qnas -p qnas-cli
qnas=$PWD/target/release/qnas
work=$(mktemp -d)
mkdir "$work/mnist-fliqs"
cp -r "$trained"/{checkpoints,space.ron,source.json,config.json,train.json} "$work/mnist-fliqs"/
echo "load before FLIQS: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/machine.txt"
t0=$(date +%s)
# the space file of the repository (its data path is relative to it), the supernet of the copy
$qnas search spaces/presets/mnist.ron --run "$work/mnist-fliqs" --strategy fliqs \
    --target 0.1,0.25,0.5 --json > "$out/fliqs.json"
t1=$(date +%s)
echo "qnas search --strategy fliqs --target 0.1,0.25,0.5: $((t1 - t0)) s" >> "$out/machine.txt"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/machine.txt"
cp "$trained/search/pareto.json" "$out/nsga2-pareto.json"
cp "$work/mnist-fliqs/search/evaluated.csv" "$out/fliqs-evaluated.csv"
# FLIQS's own dynamics on the same supernet: a copy of the default space with
# `search: (fliqs: (baseline: Ema, collapse_within: None))`, placed so that its relative data
# path still finds the data
mkdir -p "$work/spaces/presets" "$work/mnist-fliqs-off"
ln -s "$PWD/data" "$work/data"
cp "$out/mnist-fliqs-dynamics-off.ron" "$work/spaces/presets/"
cp -r "$trained"/{checkpoints,space.ron,source.json,config.json,train.json} "$work/mnist-fliqs-off"/
t0=$(date +%s)
$qnas search "$work/spaces/presets/mnist-fliqs-dynamics-off.ron" --run "$work/mnist-fliqs-off" \
    --strategy fliqs --target 0.1,0.25,0.5 --json > "$out/fliqs-dynamics-off.json"
t1=$(date +%s)
echo "the same with FLIQS's dynamics: $((t1 - t0)) s, load after $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/machine.txt"
cp "$work/mnist-fliqs-off/search/evaluated.csv" "$out/fliqs-dynamics-off-evaluated.csv"
python3 - "$out" <<'PY'
import csv, json, sys
out = sys.argv[1]
front = json.load(open(f"{out}/nsga2-pareto.json"))["front"]
lines = []
for name, title in [("fliqs", "new defaults"), ("fliqs-dynamics-off", "FLIQS's dynamics (baseline: Ema, collapse_within: None)")]:
  fl = json.load(open(f"{out}/{name}.json"))
  rows = {r["arch"]: r for r in csv.DictReader(open(f"{out}/{name}-evaluated.csv"))}
  lines += ["", title, "", "| target | target BitOps | argmax BitOps | ratio | argmax accuracy [95%] | NSGA-II front at <= its BitOps | within one interval | entropy (of) nats | argmax unchanged over the last |",
         "|---|---|---|---|---|---|---|---|---|"]
  for p in fl["policies"]:
      r = rows[p["argmax"]]
      best = max((f for f in front if f["bitops"] <= p["argmax_bitops"]), key=lambda f: f["accuracy"], default=None)
      acc, lo, hi = float(r["accuracy"]), float(r["accuracy_lo"]), float(r["accuracy_hi"])
      within = best is None or hi >= best["accuracy"]
      front_cell = "-" if best is None else "%.2f%% (%s, %.3g BitOps)" % (best["accuracy"] * 100, best["origin"], best["bitops"])
      stable = " (stable)" if p["stable"] else ""
      lines.append("| %s | %.3e | %.3e | %.3f | %.2f%% [%.2f, %.2f] | %s | %s | %.2f (%.2f) | %d of %d updates%s |" % (
          p["target"], p["target_bitops"], p["argmax_bitops"], p["cost_ratio"], acc * 100, lo * 100,
          hi * 100, front_cell, "yes" if within else "no", p["entropy"], p["max_entropy"],
          p["stable_steps"], p["steps"], stable))
open(f"{out}/table.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
