#!/usr/bin/env bash
# Experiment fliqs-defaults: the FLIQS controller's default settings (search.fliqs) converge on
# the default space: each target's argmax within 10% of its cost target, a stable argmax and a
# low final entropy, on or within one confidence interval of the NSGA-II front of the same run.
#
#   bash experiments/fliqs-defaults/run.sh
#
# 1. The controller alone on a synthetic accuracy table (examples/fliqs_convergence, seconds):
#    the settings that were compared to choose the defaults, 4 seeds each, targets 0.05-0.5.
# 2. The default job (`qnas run`, NSGA-II, about 1.5 minutes on 2 cores), then FLIQS at its
#    default settings on the same trained supernet for the targets 0.1, 0.25 and 0.5 (about 5
#    minutes per target on 2 cores), and the check of each target's argmax against the front.
# Results go to results/ next to this file.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=experiments/fliqs-defaults
run=${RUN:-runs/fliqs-defaults}
out=${OUT:-$here/results}
mkdir -p "$out"
cargo build --release --locked --bin qnas -p qnas-cli
cargo build --release --locked -p qnas-search --example fliqs_convergence
sim=target/release/examples/fliqs_convergence
qnas=target/release/qnas
{
    echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with uncommitted changes)')"
    echo "started: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$out/machine.txt"
: > "$out/synthetic.txt"
for t in 0.05 0.1 0.25 0.5; do
    # steps, learning rate, entropy weight: the old defaults, then the candidates
    for cfg in "200 0.05 0.1" "300 0.1 0.1" "200 0.2 0.05" "300 0.2 0.1" "400 0.2 0.05"; do
        set -- $cfg
        $sim spaces/presets/mnist.ron "$t" "$1" "$2" "$3" 4 4 >> "$out/synthetic.txt"
    done
done
$qnas run spaces/presets/mnist.ron --run "$run" > "$out/run.txt"
t0=$(date +%s)
# FLIQS on the same supernet, in a folder of its own next to the NSGA-II search
rm -rf "$run-fliqs" && mkdir -p "$run-fliqs"
cp -r "$run"/{checkpoints,space.ron,source.json,config.json,train.json} "$run-fliqs"/
$qnas search spaces/presets/mnist.ron --run "$run-fliqs" --strategy fliqs --target 0.1,0.25,0.5 \
    --json > "$out/fliqs.json"
t1=$(date +%s)
echo "qnas search --strategy fliqs --target 0.1,0.25,0.5: $((t1 - t0)) s" >> "$out/machine.txt"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/machine.txt"
cp "$run/search/pareto.json" "$out/nsga2-pareto.json"
cp "$run-fliqs/search/evaluated.csv" "$out/fliqs-evaluated.csv"
python3 - "$out" <<'PY'
import csv, json, sys
out = sys.argv[1]
fl = json.load(open(f"{out}/fliqs.json"))
front = json.load(open(f"{out}/nsga2-pareto.json"))["front"]
rows = {r["arch"]: r for r in csv.DictReader(open(f"{out}/fliqs-evaluated.csv"))}
lines = ["| target | target BitOps | argmax BitOps | ratio | argmax accuracy [95%] | NSGA-II front at <= its BitOps | within one interval | entropy (of) nats | stable updates |",
         "|---|---|---|---|---|---|---|---|---|"]
for p in fl["policies"]:
    r = rows[p["argmax"]]
    best = max((f for f in front if f["bitops"] <= p["argmax_bitops"]), key=lambda f: f["accuracy"], default=None)
    acc, lo, hi = float(r["accuracy"]), float(r["accuracy_lo"]), float(r["accuracy_hi"])
    within = best is None or hi >= best["accuracy"]
    front_cell = "-" if best is None else "%.2f%% (%s)" % (best["accuracy"] * 100, best["origin"])
    stable = " (stable)" if p["stable"] else ""
    lines.append("| %s | %.3e | %.3e | %.3f | %.2f%% [%.2f, %.2f] | %s | %s | %.2f (%.2f) | %d of %d%s |" % (
        p["target"], p["target_bitops"], p["argmax_bitops"], p["cost_ratio"], acc * 100, lo * 100,
        hi * 100, front_cell, "yes" if within else "no", p["entropy"], p["max_entropy"],
        p["stable_steps"], p["steps"], stable))
open(f"{out}/table.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
