#!/usr/bin/env bash
# Alternates the default job (`qnas run spaces/presets/mnist.ron`) of two qnas binaries in one
# window, ROUNDS times each, each run in a fresh folder, and prints the wall time of every run,
# the stages' times from the runs' reports and the medians.
#
#   experiments/reference/compare_run.sh BASELINE_QNAS CANDIDATE_QNAS [ROUNDS]   (default 3)
#
# E.g. the binary of the commit before the fast kernels against this one:
#   git worktree add ../qnas-base fb1aa47
#   (cd ../qnas-base && cargo build --release --bin qnas)
#   cargo build --release --bin qnas
#   experiments/reference/compare_run.sh ../qnas-base/target/release/qnas target/release/qnas 3
#
# Environment: OUT (where the run folders go; default runs/compare-run-<UTC time>), SPACE (the
# space file; default spaces/presets/mnist.ron). Runs on a shared machine are noisy: compare
# only runs from the same window, alternated.
set -euo pipefail

cd "$(dirname "$0")/../.."
base="$1"
cand="$2"
rounds="${3:-3}"
space="${SPACE:-spaces/presets/mnist.ron}"
out="${OUT:-runs/compare-run-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out"

echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ); $(nproc) cores; space $space" | tee "$out/machine.txt" >&2
for i in $(seq 1 "$rounds"); do
    for side in base cand; do
        bin="$base"
        [ "$side" = cand ] && bin="$cand"
        echo "load average before $side round $i: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt" >&2
        start=$(date +%s.%N)
        "$bin" run "$space" --run "$out/$side-$i" --json > "$out/$side-$i.json" 2> "$out/$side-$i.log"
        end=$(date +%s.%N)
        echo "$side $i $(echo "$end - $start" | bc)" | tee -a "$out/wall.txt" >&2
    done
done

python3 - "$out" <<'EOF'
import json, statistics, sys
out = sys.argv[1]
walls = {"base": [], "cand": []}
for line in open(f"{out}/wall.txt"):
    side, i, secs = line.split()
    walls[side].append(float(secs))
def train_s(side, i):
    try:
        return json.load(open(f"{out}/{side}-{i}/train.json"))["seconds"]
    except Exception:
        return float("nan")
print(f"runs in {out}\n")
print("| binary | wall s per run | median wall s | training s per run |")
print("|---|---|---|---|")
for side, name in (("base", "baseline"), ("cand", "candidate")):
    runs = ", ".join(f"{w:.0f}" for w in walls[side])
    trains = ", ".join(f"{train_s(side, i + 1):.0f}" for i in range(len(walls[side])))
    print(f"| {name} | {runs} | {statistics.median(walls[side]):.0f} | {trains} |")
print(f"\nspeed-up of the median wall time: "
      f"{statistics.median(walls['base']) / statistics.median(walls['cand']):.2f}x")
EOF
