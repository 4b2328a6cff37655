#!/usr/bin/env bash
# Alternates `qnas bench` and the PyTorch reference (resnet20_bench.py) in one window, ROUNDS
# times each, keeps every JSON report and prints the medians over the rounds as a Markdown table.
#
#   experiments/reference/compare.sh [ROUNDS]          (default 3; run from anywhere)
#
# Environment: PYTHON (a Python with torch; default python3), OUT (where the reports go;
# default runs/compare-<UTC time>), QNAS_ARGS / TORCH_ARGS (extra arguments for each side).
# Runs on this machine are noisy (±15-30%): compare only numbers from the same window.
set -euo pipefail

cd "$(dirname "$0")/../.."
rounds="${1:-3}"
python="${PYTHON:-python3}"
out="${OUT:-runs/compare-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out"

cargo build --release --locked --bin qnas >&2
qnas=target/release/qnas

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
    echo "rustc: $(rustc --version)"
    echo "python: $("$python" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__)')"
    echo "qnas args: ${QNAS_ARGS:-}"
    echo "torch args: ${TORCH_ARGS:-}"
} > "$out/machine.txt"
cat "$out/machine.txt" >&2

# each run's wall, user and system seconds (how many of the cores each side kept busy)
TIMEFORMAT="%R %U %S"
exec 3>&2  # the progress of each run, while `time` writes to its file
# other jobs on the machine distort both sides: keep the load average next to the figures
load() { echo "load average before $1: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt" >&2; }
for i in $(seq 1 "$rounds"); do
    load "qnas round $i"
    echo "== round $i/$rounds: qnas bench" >&2
    # shellcheck disable=SC2086
    { time "$qnas" bench --json ${QNAS_ARGS:-} > "$out/qnas-$i.json" 2> >(tee "$out/qnas-$i.log" >&3); } 2>> "$out/cpu-qnas.txt"
    load "pytorch round $i"
    echo "== round $i/$rounds: pytorch" >&2
    # shellcheck disable=SC2086
    { time "$python" experiments/reference/resnet20_bench.py ${TORCH_ARGS:-} > "$out/torch-$i.json" 2> >(tee "$out/torch-$i.log" >&3); } 2>> "$out/cpu-torch.txt"
done
load "the summary"

"$python" - "$out" "$rounds" <<'EOF'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
load = lambda side: [json.load(open(f"{out}/{side}-{i}.json")) for i in range(1, rounds + 1)]
q, t = load("qnas"), load("torch")

def med(reports, *path):
    vals = []
    for r in reports:
        for k in path:
            r = r[k]
        vals.append(r)
    return statistics.median(vals), vals

rows = [
    ("train", "fp32", q), ("train", "int4", q),
    ("train", "fp32", t), ("train", "fp32_channels_last", t),
    ("infer", "fp32", q), ("infer", "int4", q),
    ("infer", "fp32", t), ("infer", "fp32_channels_last", t),
]
print(f"reports in {out}; medians over {rounds} runs of each (per-run medians in brackets)\n")
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
for side in ("qnas", "torch"):
    rows = [list(map(float, l.split())) for l in open(f"{out}/cpu-{side}.txt") if l.strip()]
    busy = [(u + s) / w for w, u, s in rows]
    print(f"\n{side}: cores busy over a whole run, (user + sys) / wall: "
          f"{statistics.median(busy):.2f} ({', '.join(f'{b:.2f}' for b in busy)})")
print(f"\nthreads: qnas {q[0]['threads']}, PyTorch {t[0]['threads']}; batch {q[0]['batch']}; "
      f"MACs/image: qnas {q[0]['macs']}, PyTorch {t[0]['macs']}")
EOF
