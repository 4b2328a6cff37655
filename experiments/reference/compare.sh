#!/usr/bin/env bash
# Alternates `qnas bench` and the PyTorch reference (torch_bench.py) in one window, ROUNDS times
# each, keeps every JSON report and prints the medians over the rounds as a Markdown table.
# PyTorch builds the very network qnas measured, from the `plan` of the qnas report of the
# same round.
#
#   experiments/reference/compare.sh [ROUNDS]          (default 3; run from anywhere)
#
# Environment:
#   PYTHON     a Python with torch (default python3)
#   SPACE      the space whose largest member is measured (default spaces/presets/resnet20.ron)
#   BATCH      images per step (default 128)
#   LOAD       with LOAD=N (N >= 1), every round runs both sides twice: quiet, then with N busy
#              processes (shell loops, started and stopped by this script) competing for the
#              cores; the summary gives each side's loaded/quiet ratio and qnas's ratio over
#              PyTorch's (issue 20's "steady under load": at least 0.9)
#   OUT        where the reports go (default runs/compare-<UTC time>)
#   QNAS_ARGS / TORCH_ARGS  extra arguments for each side
# Runs on this machine are noisy (±15-30%): compare only numbers from the same window.
set -euo pipefail

cd "$(dirname "$0")/../.."
rounds="${1:-3}"
python="${PYTHON:-python3}"
space="${SPACE:-spaces/presets/resnet20.ron}"
batch="${BATCH:-128}"
load_procs="${LOAD:-0}"
out="${OUT:-runs/compare-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out"

cargo build --release --locked --bin qnas >&2
qnas=target/release/qnas

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
    echo "rustc: $(rustc --version)"
    echo "python: $("$python" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__)')"
    echo "space: $space; batch: $batch; busy processes in the loaded runs: $load_procs"
    echo "qnas args: ${QNAS_ARGS:-}"
    echo "torch args: ${TORCH_ARGS:-}"
} > "$out/machine.txt"
cat "$out/machine.txt" >&2

# the busy processes of a loaded run (killed when the run ends, or when this script exits)
busy_pids=()
start_load() {
    for _ in $(seq 1 "$load_procs"); do
        sh -c 'while :; do :; done' &
        busy_pids+=("$!")
    done
}
stop_load() {
    if [ "${#busy_pids[@]}" -gt 0 ]; then
        kill "${busy_pids[@]}" 2>/dev/null || true
        wait "${busy_pids[@]}" 2>/dev/null || true
    fi
    busy_pids=()
}
trap stop_load EXIT

# each run's wall, user and system seconds (how many of the cores each side kept busy)
TIMEFORMAT="%R %U %S"
exec 3>&2  # the progress of each run, while `time` writes to its file
# other jobs on the machine distort both sides: keep the load average next to the figures
load() { echo "load average before $1: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt" >&2; }
# one run of each side; $1 is the report's suffix: "" (quiet) or "-loaded"
pair() {
    local i="$1" tag="$2"
    load "qnas round $i$tag"
    echo "== round $i/$rounds$tag: qnas bench" >&2
    # shellcheck disable=SC2086
    { time "$qnas" bench --json --space "$space" --batch "$batch" ${QNAS_ARGS:-} > "$out/qnas$tag-$i.json" 2> >(tee "$out/qnas$tag-$i.log" >&3); } 2>> "$out/cpu-qnas$tag.txt"
    load "pytorch round $i$tag"
    echo "== round $i/$rounds$tag: pytorch" >&2
    # shellcheck disable=SC2086
    { time "$python" experiments/reference/torch_bench.py --plan "$out/qnas$tag-$i.json" --batch "$batch" ${TORCH_ARGS:-} > "$out/torch$tag-$i.json" 2> >(tee "$out/torch$tag-$i.log" >&3); } 2>> "$out/cpu-torch$tag.txt"
}
for i in $(seq 1 "$rounds"); do
    pair "$i" ""
    if [ "$load_procs" -gt 0 ]; then
        start_load
        pair "$i" "-loaded"
        stop_load
    fi
done
load "the summary"

"$python" - "$out" "$rounds" "$load_procs" <<'EOF'
import json, statistics, sys
out, rounds, load_procs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
load = lambda side: [json.load(open(f"{out}/{side}-{i}.json")) for i in range(1, rounds + 1)]

def med(reports, *path):
    vals = []
    for r in reports:
        for k in path:
            r = r[k]
        vals.append(r)
    return statistics.median(vals), vals

def table(tag):
    q, t = load("qnas" + tag), load("torch" + tag)
    rows = [
        ("train", "fp32", q), ("train", "int4", q),
        ("train", "fp32", t), ("train", "fp32_channels_last", t),
        ("infer", "fp32", q), ("infer", "int4", q),
        ("infer", "fp32", t), ("infer", "fp32_channels_last", t),
    ]
    print("| implementation | mode | variant | img/s | GFLOP/s |")
    print("|---|---|---|---|---|")
    for mode, var, reps in rows:
        impl = f"{reps[0]['implementation']}, {reps[0]['device']}"
        m, vals = med(reps, mode, var, "img_per_s")
        g, _ = med(reps, mode, var, "gflop_per_s")
        runs = ", ".join(f"{v:.0f}" for v in vals)
        print(f"| {impl} | {mode} | {var} | {m:.1f} ({runs}) | {g:.2f} |")
    for mode in ("train", "infer"):
        m, vals = med(q, mode, "fake_quant_overhead")
        print(f"\nqnas fake-quant overhead, {mode} (int4 / fp32 step time): {m:.2f}x "
              f"({', '.join(f'{v:.2f}' for v in vals)})")
    for mode in ("train", "infer"):
        ratios = [a[mode]["fp32"]["img_per_s"] / b[mode]["fp32_channels_last"]["img_per_s"]
                  for a, b in zip(q, t)]
        print(f"qnas fp32 / PyTorch channels_last, {mode}: {statistics.median(ratios):.2f}x "
              f"({', '.join(f'{r:.2f}' for r in ratios)})")
    for side in ("qnas", "torch"):
        rows = [list(map(float, l.split())) for l in open(f"{out}/cpu-{side}{tag}.txt") if l.strip()]
        busy = [(u + s) / w for w, u, s in rows]
        print(f"{side}: cores busy over a whole run, (user + sys) / wall: "
              f"{statistics.median(busy):.2f} ({', '.join(f'{b:.2f}' for b in busy)})")
    print(f"\nthreads: qnas {q[0]['threads']}, PyTorch {t[0]['threads']}; batch {q[0]['batch']}; "
          f"MACs/image: qnas {q[0]['macs']}, PyTorch {t[0]['macs']}")

print(f"reports in {out}; medians over {rounds} runs of each (per-run figures in brackets)\n")
print("### quiet\n")
table("")
if load_procs > 0:
    print(f"\n### loaded ({load_procs} busy process(es) beside each run)\n")
    table("-loaded")
    print("\n### loaded / quiet, per round (img/s of the loaded run over the quiet run of the same round)\n")
    for mode, tvar in (("train", "fp32_channels_last"), ("infer", "fp32_channels_last")):
        qr = [l[mode]["fp32"]["img_per_s"] / s[mode]["fp32"]["img_per_s"]
              for s, l in zip(load("qnas"), load("qnas-loaded"))]
        tr = [l[mode][tvar]["img_per_s"] / s[mode][tvar]["img_per_s"]
              for s, l in zip(load("torch"), load("torch-loaded"))]
        rel = [a / b for a, b in zip(qr, tr)]
        fmt = lambda xs: f"{statistics.median(xs):.2f} ({', '.join(f'{x:.2f}' for x in xs)})"
        print(f"- {mode}: qnas fp32 {fmt(qr)}; PyTorch {tvar} {fmt(tr)}; "
              f"qnas's ratio over PyTorch's {fmt(rel)}")
EOF
