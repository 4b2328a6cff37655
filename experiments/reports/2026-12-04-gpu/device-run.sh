#!/usr/bin/env bash
# device check: qnas (wgpu build) bench on the GPU via Vulkan, then experiments/gpu/check.sh
set -x
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>&1
ldconfig -p | grep -i "libvulkan\|libnvidia-gl\|libGLX_nvidia" | head
mkdir -p /tmp/gl && for d in .gl/*.deb; do dpkg-deb -x "$d" /tmp/gl; done
export LD_LIBRARY_PATH=/tmp/gl/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
xz -dc .gl/qnas.xz > .gl/qnas && chmod +x .gl/qnas
timeout 200 .gl/qnas bench --device wgpu --steps 5 --warmup 2 --json > $OUT/bench-wgpu.json 2> $OUT/bench-wgpu.err; echo "bench wgpu exit $?"
tail -20 $OUT/bench-wgpu.err
QNAS_BIN=$PWD/.gl/qnas timeout 300 bash experiments/gpu/check.sh > $OUT/check.log 2>&1; echo "check exit $?"
cp -r experiments/gpu/out $OUT/check-out 2>/dev/null; cp experiments/gpu/report.md $OUT/ 2>/dev/null
tail -30 $OUT/check.log
