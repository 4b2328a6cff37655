#!/usr/bin/env bash
# qnas on a machine with an NVIDIA GPU: build with the `cuda` and `wgpu` backends, run
# `qnas bench` (ResNet-20, the largest member of spaces/presets/resnet20.ron) on cuda, wgpu and
# flex, PyTorch's CUDA reference on the same network and protocol when PyTorch with CUDA is
# installed, the default job (`qnas run spaces/presets/mnist.ron`) on cuda, and with two GPUs or
# more a data-parallel training on two of them; then writes experiments/gpu/report.md from what
# it measured (raw outputs in experiments/gpu/out/).
#
#   bash experiments/gpu/check.sh                # builds target/release/qnas (needs crates.io)
#   QNAS_BIN=path/to/qnas bash experiments/gpu/check.sh   # a binary built elsewhere with
#                                                         # --features cuda,wgpu (offline)
#
# Needs: the NVIDIA driver (libcuda.so.1, nvidia-smi) and NVRTC (libnvrtc.so, from a CUDA
# toolkit or PyPI's nvidia-cuda-nvrtc wheel, found through LD_LIBRARY_PATH), which burn's cuda
# backend loads at run time. Building needs no CUDA toolkit but crates.io and burn's LLVM bundle
# (downloaded from GitHub by tracel-llvm-bundler into ~/.local/share/tracel/, or copied there;
# README "GPUs and several devices"). Every step's failure is recorded in the report and the
# script goes on.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=experiments/gpu/out
rm -rf "$out"
mkdir -p "$out"
log() { echo "[check] $*" >&2; }
secs() { date +%s.%N; }
status=()   # "step|ok or failed (exit code)|seconds"
step() {    # step NAME OUTFILE COMMAND...: runs COMMAND, stdout to OUTFILE, stderr to OUTFILE.err
    local name=$1 file=$2
    shift 2
    log "$name: $*"
    local t0 rc
    t0=$(secs)
    "$@" >"$file" 2>"$file.err"
    rc=$?
    local dt
    dt=$(python3 -c "print(f'{$(secs) - $t0:.1f}')")
    if [ $rc = 0 ]; then status+=("$name|ok|$dt"); else status+=("$name|failed (exit $rc)|$dt"); fi
    log "$name: exit $rc after $dt s"
    return 0
}

step "nvidia-smi" "$out/nvidia-smi.txt" nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)

if [ -n "${QNAS_BIN:-}" ]; then
    qnas=$QNAS_BIN
    status+=("build|given: $QNAS_BIN|0")
else
    step "build (release, cuda + wgpu)" "$out/build.txt" \
        cargo build --release --locked --features qnas-cli/cuda,qnas-cli/wgpu
    qnas=target/release/qnas
fi

bench=(bench --space spaces/presets/resnet20.ron --batch 128 --steps 10 --warmup 3 --json)
for dev in cuda wgpu flex; do
    step "qnas bench --device $dev" "$out/bench-$dev.json" "$qnas" "${bench[@]}" --device "$dev"
done
if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    step "PyTorch CUDA reference" "$out/bench-pytorch-cuda.json" \
        python3 experiments/reference/torch_bench.py --plan "$out/bench-flex.json" --batch 128 --steps 10 --warmup 3 --device cuda
else
    status+=("PyTorch CUDA reference|skipped: no PyTorch with CUDA in python3|0")
fi

step "qnas run (default job) --device cuda" "$out/run-cuda.json" \
    "$qnas" run spaces/presets/mnist.ron --run "$out/runs/mnist-cuda" --device cuda --json
if [ "${gpus:-0}" -ge 2 ]; then
    step "qnas train --devices cuda:0,cuda:1" "$out/train-2gpus.json" \
        "$qnas" train spaces/presets/mnist.ron --run "$out/runs/mnist-2gpus" --devices cuda:0,cuda:1 --json
else
    status+=("qnas train --devices cuda:0,cuda:1|skipped: ${gpus:-0} GPU(s)|0")
fi

printf '%s\n' "${status[@]}" > "$out/status.txt"
python3 - "$out" <<'EOF'
import json, os, sys
out = sys.argv[1]
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
lines = ["# qnas on an NVIDIA GPU (experiments/gpu/check.sh)", ""]
gpu = open(os.path.join(out, "nvidia-smi.txt")).read().strip() if os.path.exists(os.path.join(out, "nvidia-smi.txt")) else "?"
lines += ["GPU (nvidia-smi): `" + gpu.replace("\n", "; ") + "`", "", "## Steps", "",
          "| step | outcome | seconds |", "|---|---|---|"]
for row in open(os.path.join(out, "status.txt")).read().splitlines():
    name, outcome, secs = row.split("|")
    lines.append(f"| {name} | {outcome} | {secs} |")
lines += ["", "## ResNet-20, batch 128 (`qnas bench`, median of 10 steps after 3 warm-up steps)", "",
          "| implementation | device | train img/s | infer img/s | train int4 img/s | infer int4 img/s |",
          "|---|---|---|---|---|---|"]
def ips(r, mode, variant):
    m = (r.get(mode) or {}).get(variant) if r else None
    return f"{m['img_per_s']:.0f}" if m else "–"
for name, label in [("bench-cuda.json", "qnas (burn cuda)"), ("bench-wgpu.json", "qnas (burn wgpu)"),
                    ("bench-flex.json", "qnas (burn flex + own kernels)"),
                    ("bench-pytorch-cuda.json", "PyTorch")]:
    r = load(name)
    if r is None:
        lines.append(f"| {label} | – | not measured (see Steps) | | | |")
        continue
    dev = r.get("device_name") or r.get("device")
    lines.append(f"| {label} | {dev} | {ips(r, 'train', 'fp32')} | {ips(r, 'infer', 'fp32')} | "
                 f"{ips(r, 'train', 'int4')} | {ips(r, 'infer', 'int4')} |")
run = load("run-cuda.json")
lines += ["", "## Default job on cuda (`qnas run spaces/presets/mnist.ron --device cuda`)", ""]
if run:
    t = run.get("train") or {}
    lines.append(f"- training: {t.get('steps')} steps in {t.get('seconds', 0):.1f} s "
                 f"({t.get('images_per_second', 0):.0f} img/s)")
    front = (run.get("search") or {}).get("front") or []
    lines.append(f"- search: {len(front)} members on the front")
    for m in front:
        lines.append(f"  - accuracy {m['accuracy'] * 100:.2f}%, {m['bitops']:.3g} BitOps")
else:
    lines.append("not completed (see Steps and out/run-cuda.json.err)")
two = load("train-2gpus.json")
if two:
    lines += ["", f"Two GPUs, data-parallel: {two.get('steps')} steps in {two.get('seconds', 0):.1f} s "
              f"({two.get('images_per_second', 0):.0f} img/s)."]
open(os.path.join(out, "..", "report.md"), "w").write("\n".join(lines) + "\n")
EOF
log "wrote experiments/gpu/report.md"
