#!/bin/bash
# What one leased GPU machine (the `device` tool; torch with CUDA, no Debian TTS tools) runs for this project.
#   bench/gpu_lease.sh train SECONDS   ASR runs from the carried features (bench/gpu_train.py), packed into $OUT
#   bench/gpu_lease.sh tail            bench/tail_throughput.py on CUDA (FP32, TF32) -> $OUT/tail_throughput.json
#   bench/gpu_lease.sh tail-bf16       bfloat16 against float32 (TF32): transcripts (bench/tail_dtype.py), step
#                                      times with every step kept, the Python part alone, a profile at 5,000
#   bench/gpu_lease.sh tail-spread     the same with each device at its own phase (the server's batching)
#   bench/gpu_lease.sh tail-stalls     what makes 1-3% of steps slow: bfloat16 at 5,000 streams, spread and in step,
#                                      free and pinned to one core with one thread (steal, switches per step)
#   bench/gpu_lease.sh tail-shapes     do new tensor sizes make the slow steps? bfloat16, 5,000 and 10,000 streams
#                                      spread, each step marked when it ran a size for the first time; then the
#                                      same with --buckets (sizes rounded up to a few), and in step
#   bench/gpu_lease.sh tail-profile    torch.profiler's view of one step at 5,000 streams
#   bench/gpu_lease.sh tail-stream     the same for the per-stream ASR engine (AsrEngine)
# Carry: .whl (wheels of the pure and binary packages the image lacks, plus cobs' pure-Python fallback) and, for
# train, data/speech90/features/asr-{train,dev}-40.safetensors; for tail-bf16, asr-test-clean-40.safetensors.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && cp -r .whl/cobs /tmp/site/ || exit 1
fi
mkdir -p /tmp/pkg && ln -sfn "$PWD" /tmp/pkg/acom   # the repository root is the package `acom`
export PYTHONPATH=/tmp/site:/tmp/pkg PYTHONUNBUFFERED=1
nvidia-smi -L; python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"
case "$1" in
  train)
    python3 bench/gpu_train.py --features data/speech90/features --out "$OUT" --budget-s "$2" --threads 4 \
      --run rpi-s0:rpi-asr:0 --run rpi-s1:rpi-asr:1 --run edge-s0:edge-asr:0 --run edge-s1:edge-asr:1 ;;
  tail)  # the slot engine (the default): FP32 and TF32 sweeps; TF32 again with expandable allocator segments
    python3 bench/tail_throughput.py --task asr --device cuda --out "$OUT/tail_throughput.json" \
      --streams 1000,2000,5000,10000 --steps 40
    python3 bench/tail_throughput.py --task asr --device cuda --out "$OUT/tail_throughput.json" --tf32 \
      --streams 1000,2000,5000,10000 --steps 40
    PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True python3 bench/tail_throughput.py --task asr --device cuda \
      --out "$OUT/tail_expandable.json" --tf32 --streams 2000,5000 --steps 40 ;;
  tail-spread)  # devices at their own phases (as bench/serve_load.py sends), bfloat16 and float32 (TF32)
    T="python3 bench/tail_throughput.py --task asr --device cuda --out $OUT/tail_throughput.json --arrivals spread --raw"
    $T --dtype bfloat16 --streams 2000,5000,10000,20000
    $T --tf32 --streams 5000,10000 ;;
  tail-bf16)
    python3 bench/tail_dtype.py --features data/speech90/features --out "$OUT/tail_dtype.json"
    T="python3 bench/tail_throughput.py --task asr --device cuda --out $OUT/tail_throughput.json --steps 40 --raw"
    $T --tf32 --streams 1000,2000,5000,10000
    $T --dtype bfloat16 --streams 1000,2000,5000,7500,10000
    $T --engine slot --python-only --streams 1000,5000,10000
    python3 bench/tail_throughput.py --task asr --device cuda --dtype bfloat16 --profile 5000 > "$OUT/profile_bf16.txt"
    tail -30 "$OUT/profile_bf16.txt" ;;
  tail-stalls)  # each slow step with the host's view of it (tail_throughput.py --raw: CPU share, steal, switches)
    nproc; grep -m1 "model name" /proc/cpuinfo; head -1 /proc/stat
    T="python3 bench/tail_throughput.py --task asr --device cuda --out $OUT/tail_stalls.json --dtype bfloat16 --raw"
    for opts in "" "--pin 3 --threads 1" "--pin 3 --threads 1 --gc off"; do
      $T --arrivals spread --streams 5000 --seconds 20 $opts
      $T --streams 5000 --steps 200 $opts
    done ;;
  tail-shapes)  # stalls against first-time tensor sizes (steps_raw column new_shapes), without and with buckets
    T="python3 bench/tail_throughput.py --task asr --device cuda --out $OUT/tail_shapes.json --dtype bfloat16 --raw"
    for opts in "" "--buckets"; do
      $T --arrivals spread --streams 5000,10000 --seconds 20 $opts
      $T --streams 5000 --steps 100 $opts
    done ;;
  tail-profile)  # where a step's time goes at 5,000 streams
    python3 bench/tail_throughput.py --task asr --device cuda --profile 5000 ;;
  tail-stream)  # the per-stream engine, for comparison
    python3 bench/tail_throughput.py --task asr --device cuda --out "$OUT/tail_throughput.json" --engine stream \
      --streams 100,500,1000 --steps 5 ;;
  *) echo "usage: $0 train SECONDS | tail | tail-bf16 | tail-spread | tail-stalls | tail-shapes | tail-stream | tail-profile"
     exit 2 ;;
esac
