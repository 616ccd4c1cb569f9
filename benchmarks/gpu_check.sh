#!/usr/bin/env bash
# GPU speed and quality checks in one script: the 800-epoch published comparison beside the
# default and fast schedules, the default preset, and the paper preset on the first 20 frames
# of MPI Sintel alley_2, with decode fps at native size and 1080p. Needs a CUDA build of torch
# and the clip as PNGs under .gpu/data/sintel_alley_2 (run from the repository root):
#     bash benchmarks/gpu_check.sh
# Everything it measures lands in $OUT (JSON lines + a log); each step is time-boxed so that
# the whole run takes under 8 minutes. Record the results with the name of the card.
set -uo pipefail
OUT=${OUT:-/tmp/nrff-gpu}
mkdir -p "$OUT"
CLIP=.gpu/data/sintel_alley_2
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" | tee -a "$OUT/gpu.txt"

# 1. side by side in one run: the 800-epoch published comparison (paper key frames, fp16),
#    the default preset's schedule on the same key frames (time to 34.15 dB and the ratio),
#    and the fast preset; decode fps at native size and 1080p
timeout 270 python3 benchmarks/speed.py "$CLIP" --frames 0:20 --crf 22 --target-psnr 34.15 --eval-every 8 \
    --variant paper-800:preset=paper,epochs=800 --variant default-schedule:preset=paper,epochs=800,pixel_stride=16 \
    --variant fast:preset=fast --json "$OUT/speed.jsonl" 2>&1 | tee "$OUT/speed-side-by-side.log"
# 2. the default preset as users run it (AV1 key frames, 8-bit weights)
timeout 80 python3 benchmarks/speed.py "$CLIP" --frames 0:20 --crf 22 --preset default --eval-every 20 \
    --decode-sizes native --json "$OUT/speed.jsonl" 2>&1 | tee "$OUT/speed-default.log"
# 3. the paper preset (5,000 epochs), if there is time left in the call (target <= 166 s)
timeout 100 python3 benchmarks/speed.py "$CLIP" --frames 0:20 --crf 22 --preset paper \
    --eval-every 100 --decode-sizes native --json "$OUT/speed.jsonl" 2>&1 | tee "$OUT/speed-paper.log"
echo "done; results in $OUT"
