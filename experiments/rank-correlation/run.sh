#!/usr/bin/env bash
# Experiment rank-correlation: how well the supernet of the default space ranks its members,
# measured against stand-alone training of the same members with the same recipe.
#
#   bash experiments/rank-correlation/run.sh            # 16 members, one seed each
#   SEEDS=2 bash experiments/rank-correlation/run.sh    # two trainings per member
#   VARIANT=mse bash experiments/rank-correlation/run.sh # variants/mse.ron, into variants/mse-results
#
# Trains the supernet and searches it (`qnas run`, about 1.5 minutes on 2 cores), then trains
# MEMBERS members alone (`qnas correlate`, about 6-8 minutes per seed on 2 cores), and copies the
# report into results/ next to this file. Both stages resume when run again.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=experiments/rank-correlation
members=${MEMBERS:-16}
seeds=${SEEDS:-1}
if [ -n "${VARIANT:-}" ]; then
    space=$here/variants/$VARIANT.ron
    run=${RUN:-runs/rank-correlation-$VARIANT}
    out=$here/variants/$VARIANT-results
else
    space=$here/space.ron
    run=${RUN:-runs/rank-correlation}
    out=$here/results
fi
mkdir -p "$out"
cargo build --release --locked --bin qnas
qnas=target/release/qnas
{
    echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with uncommitted changes)')"
    echo "started: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$out/machine.txt"
t0=$(date +%s)
$qnas run "$space" --run "$run" > "$out/run.txt"
t1=$(date +%s)
$qnas correlate "$run" --members "$members" --seeds "$seeds" > "$out/correlate.txt"
t2=$(date +%s)
{
    echo "qnas run: $((t1 - t0)) s"
    echo "qnas correlate --members $members --seeds $seeds: $((t2 - t1)) s"
    echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
} >> "$out/machine.txt"
for f in correlate.json correlate.csv correlate.svg correlate.png; do
    cp "$run/correlate/$f" "$out/$f"
done
cp "$run/search/pareto.csv" "$out/pareto.csv"
cat "$out/correlate.txt"
