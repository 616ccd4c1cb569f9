#!/usr/bin/env bash
# GPU speed and quality checks in one script: the fast preset, the 800-epoch published
# comparison and the paper preset on the first 20 frames of MPI Sintel alley_2, with decode
# fps at native size and 1080p. Needs a CUDA build of torch and the clip as PNGs under
# .gpu/data/sintel_alley_2 (run from the repository root):
#     bash benchmarks/gpu_check.sh
# Everything it measures lands in $OUT (JSON lines + a log); each step is time-boxed so that
# the whole run takes under 10 minutes. Record the results with the name of the card.
set -uo pipefail
OUT=${OUT:-/tmp/nrff-gpu}
mkdir -p "$OUT"
CLIP=.gpu/data/sintel_alley_2
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" | tee -a "$OUT/gpu.txt"

# 1. fast preset: time, PSNR trace, decode fps (native and 1080p), memory (target: <= 33 s)
timeout 150 python3 benchmarks/speed.py "$CLIP" --frames 0:20 --crf 22 --preset fast --eval-every 20 \
    --json "$OUT/speed.jsonl" 2>&1 | tee "$OUT/speed-fast.log"
# 2. the published comparison: 800 epochs at CRF 22 (target: >= 34.02 dB at <= 0.1142 bpp)
timeout 200 python3 benchmarks/speed.py "$CLIP" --frames 0:20 --crf 22 --preset paper --epochs 800 \
    --eval-every 40 --decode-sizes native --json "$OUT/speed.jsonl" 2>&1 | tee "$OUT/speed-800.log"
# 3. the paper preset (5,000 epochs), if there is time left in the call (target <= 166 s)
timeout 180 python3 benchmarks/speed.py "$CLIP" --frames 0:20 --crf 22 --preset paper \
    --eval-every 100 --decode-sizes native --json "$OUT/speed.jsonl" 2>&1 | tee "$OUT/speed-paper.log"
echo "done; results in $OUT"
