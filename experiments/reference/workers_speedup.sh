#!/usr/bin/env bash
# How much faster a search evaluates its members with more processes on one study: the search
# alone, then with 1 and 3 `qnas worker` processes beside it (2 and 4 processes in all), every
# process on one thread (--threads 1), on the default MNIST space, whose evaluation (BN
# recalibration on 8 training batches, then 400 validation images per member) dominates a
# search. Each run searches a fresh copy of one trained run with the same seed; the script
# checks that every run ends with the same front, and prints members per second, with the CPU
# time the processes got (user + system) to show how much of the machine they had: on a shared
# machine more processes get more cores only where cores are free.
#
# usage: experiments/reference/workers_speedup.sh [QNAS] [BUDGET] [SPACE]
# (from the repository root; QNAS defaults to target/release/qnas, BUDGET to 48)
set -euo pipefail
qnas=${1:-target/release/qnas}
budget=${2:-48}
space=${3:-spaces/presets/mnist.ron}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "start: $(date -u +%FT%TZ), load: $(cut -d' ' -f1-3 /proc/loadavg)"
# a short training: the weights do not change how long a member takes to evaluate
"$qnas" train "$space" --run "$work/trained" --steps 20 >/dev/null 2>&1
run_one() { # $1: label, $2: processes in all, $3: threads of each
    local label=$1 n=$2 threads=$3 run="$work/run-$1"
    cp -r "$work/trained" "$run"
    local pids=()
    for i in $(seq 2 "$n"); do
        /usr/bin/time -o "$run/cpu-$i" -f "%U %S" \
            "$qnas" worker "$run" --threads "$threads" >/dev/null 2>&1 &
        pids+=($!)
    done
    local t0 t1
    t0=$(date +%s.%N)
    /usr/bin/time -o "$run/cpu-1" -f "%U %S" \
        "$qnas" search "$space" --run "$run" --strategy random --budget "$budget" --seed 1 \
        --threads "$threads" --json >"$run/out.json" 2>/dev/null
    t1=$(date +%s.%N)
    for p in "${pids[@]}"; do wait "$p"; done
    python3 - "$run" "$t0" "$t1" "$label" "$work/front-$label" <<'PY'
import glob, json, sys
run, t0, t1, label, front = sys.argv[1:]
r = json.load(open(f"{run}/out.json"))
t = float(t1) - float(t0)
cpu = sum(sum(map(float, open(f).read().split()[-2:])) for f in glob.glob(f"{run}/cpu-*"))
json.dump([f["arch"] for f in r["front"]], open(front, "w"), sort_keys=True)
print(f"{label:<28} {r['evaluated']:>4} members {t:7.1f} s {r['evaluated'] / t:6.2f} members/s"
      f"  CPU {cpu:6.1f} s ({cpu / t:4.2f} cores busy, {r['evaluated'] / cpu:5.2f} members per CPU s)"
      f"  hypervolume {r['hypervolume']:.4f}")
PY
}
run_one "1 process, 1 thread" 1 1
run_one "2 processes, 1 thread each" 2 1
run_one "4 processes, 1 thread each" 4 1
run_one "1 process, $(nproc) threads" 1 "$(nproc)"
for f in "$work"/front-*; do
    cmp -s "$f" "$work/front-1 process, 1 thread" || { echo "FRONTS DIFFER: $f"; exit 1; }
done
echo "every run ended with the same front"
echo "end: $(date -u +%FT%TZ), load: $(cut -d' ' -f1-3 /proc/loadavg)"
