#!/usr/bin/env bash
# The device checks of issues 3 and 5 as one script, for a session that is lent a GPU.
# Stage the data first (from the project root, on the CPU machine):
#     ../shared/tools/gpu-prep sintel_alley_2 20
# then run this through the device tool with carry [".gpu"] and a timeout of ~540 s,
# starting the command with the install line gpu-prep prints, e.g.
#     python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#         --target /tmp/site .gpu/whl/*.whl && export PYTHONPATH=/tmp/site:$PWD/src:$PWD || exit 1; \
#     bash benchmarks/gpu_check.sh
# Everything it measures lands in $OUT (JSON lines + a log); each step is time-boxed so that
# the whole run fits one 10-minute call. Commit what it printed, naming the card.
set -uo pipefail
OUT=${OUT:-/tmp/nrff-gpu}
mkdir -p "$OUT"
CLIP=.gpu/data/sintel_alley_2
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" | tee -a "$OUT/gpu.txt"

# 1. fast preset: time, PSNR trace, decode fps (native and 1080p), memory (issue 5)
timeout 150 python3 benchmarks/speed.py "$CLIP" --frames 0:20 --crf 22 --preset fast --eval-every 20 \
    --json "$OUT/speed.jsonl" 2>&1 | tee "$OUT/speed-fast.log"
# 2. the published comparison: 800 epochs at CRF 22 (issue 3: >= 34.02 dB at <= 0.1142 bpp)
timeout 200 python3 benchmarks/speed.py "$CLIP" --frames 0:20 --crf 22 --preset paper --epochs 800 \
    --eval-every 40 --decode-sizes native --json "$OUT/speed.jsonl" 2>&1 | tee "$OUT/speed-800.log"
# 3. the paper preset (5,000 epochs), if there is time left in the call (target <= 166 s)
timeout 180 python3 benchmarks/speed.py "$CLIP" --frames 0:20 --crf 22 --preset paper \
    --eval-every 100 --decode-sizes native --json "$OUT/speed.jsonl" 2>&1 | tee "$OUT/speed-paper.log"
echo "done; results in $OUT"
