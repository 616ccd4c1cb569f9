#!/usr/bin/env bash
# GPU speed checks in one script (under 8 minutes): eager against torch.compile and CUDA graphs,
# the 800-epoch published comparison beside the default and fast schedules, the default preset
# with decode fps at native size and 1080p, byte-identical reruns on the card, and the paper
# preset if time is left; on the first 20 frames of MPI Sintel alley_2. Needs a CUDA build of
# torch and the clip as PNGs under .gpu/data/sintel_alley_2 (run from the repository root):
#     bash benchmarks/gpu_check.sh
# Everything it measures lands in $OUT (JSON lines + logs); every step is time-boxed against one
# deadline, and a step that fails does not stop the others. Record the results with the card's name.
set -u
OUT=${OUT:-/tmp/nrff-gpu}
mkdir -p "$OUT"
CLIP=.gpu/data/sintel_alley_2
export PYTHONUNBUFFERED=1
START=$(date +%s)
DEADLINE=$((START + ${GPU_CHECK_SECONDS:-470}))
left() { echo $((DEADLINE - $(date +%s))); }
box() {  # box SECONDS LOG CMD...: run CMD for at most SECONDS (and never past the deadline)
    local s=$1 log=$2; shift 2
    local l; l=$(left); [ "$l" -lt "$s" ] && s=$l
    if [ "$s" -lt 15 ]; then echo "skipped (no time left): $*" | tee -a "$OUT/$log"; return; fi
    echo "== [$(( $(date +%s) - START )) s] $* (at most $s s)" | tee -a "$OUT/$log"
    timeout "$s" "$@" >>"$OUT/$log" 2>&1; echo "   exit $?" | tee -a "$OUT/$log"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" | tee -a "$OUT/gpu.txt"

# 0. the same encode twice on the card gives the same bytes (eager and CUDA graphs)
for mode in off graphs; do
    for run in 1 2; do
        box 60 determinism.log python3 -m nrff encode src/nrff/data/sample -o "/tmp/det-$mode-$run.nrff" --preset fast \
            --epochs 30 --compile $mode --no-verify --quiet --force
    done
done
sha256sum /tmp/det-*.nrff | tee -a "$OUT/determinism.log"

# 1. steady-state step time, eager / fused / CUDA graphs (default schedule, paper key frames)
for mode in off on graphs; do
    box 75 profile.log python3 benchmarks/profile_step.py "$CLIP" --frames 0:20 --crf 22 --preset paper --stride 16 \
        --steps 200 --rows 12 --compile $mode
done

# 2. side by side in one run: the 800-epoch published comparison, the default preset's schedule
#    (same key frames) eager and compiled, and the fast preset; time to 34.15 dB and the ratio
box 240 speed-side-by-side.log python3 benchmarks/speed.py "$CLIP" --frames 0:20 --crf 22 --target-psnr 34.15 \
    --eval-every 8 --decode-sizes native --variant paper-800:preset=paper,epochs=800 \
    --variant default-schedule:preset=paper,epochs=800,pixel_stride=16 \
    --variant default-schedule-graphs:preset=paper,epochs=800,pixel_stride=16,compile=graphs \
    --variant fast:preset=fast --json "$OUT/speed.jsonl"

# 3. the default preset as users run it (AV1 key frames, 8-bit weights), decode at native size and 1080p
box 70 speed-default.log python3 benchmarks/speed.py "$CLIP" --frames 0:20 --crf 22 --preset default --eval-every 20 \
    --decode-sizes native,1920x1080 --json "$OUT/speed.jsonl"

# 4. the paper preset (5,000 epochs) with what is left
box 200 speed-paper.log python3 benchmarks/speed.py "$CLIP" --frames 0:20 --crf 22 --preset paper \
    --eval-every 100 --decode-sizes native --json "$OUT/speed.jsonl"
echo "done in $(( $(date +%s) - START )) s; results in $OUT"
