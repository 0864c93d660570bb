#!/usr/bin/env bash
# Benchmark harness on one GPU (H100/H200), float32 and bfloat16, in about 7 minutes.
#
#   OUT=/path/to/dir bash benchmarks/gpu.sh        (default OUT: benchmarks/results/gpu)
#
# Needs jax (CUDA), flax, optax, numpy; nothing else of hmaf's dependencies (no TF,
# clu, ml_collections, librosa); step 6 also needs torch with CUDA (it skips without).
# Runs from the repository root without installing.
# Each step has its own time limit and appends JSON lines as it goes, so a step cut
# short still leaves its finished measurements in $OUT.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # peak_bytes_in_use then shows what the steps use
export TF_CPP_MIN_LOG_LEVEL=2

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  $PY -c "import jax, flax, optax; print(jax.__version__, flax.__version__, optax.__version__, jax.devices())"
} > "$OUT/gpu_env.txt" 2>&1
cat "$OUT/gpu_env.txt"

run() {  # run SECONDS NAME ARGS...: one harness call with a time limit
  local limit=$1 name=$2; shift 2
  echo "== $name (limit ${limit}s)"
  echo "== $name" >> "$OUT/gpu_logs.txt"
  timeout "$limit" $PY -m benchmarks.run --out "$OUT/$name.jsonl" "$@" >> "$OUT/gpu_logs.txt" 2>&1
  echo "   exit $? , $(wc -l < "$OUT/$name.jsonl" 2>/dev/null || echo 0) records"
}

# 1. full train step, HF/VF/FAF at the three shapes (+ FAF padded), float32   ~110 s
run 130 gpu_train_f32 --sections train
# 2. the nested-attention variants at the big-batch shape, float32             ~40 s
run 55 gpu_nested_f32 --sections nested --shapes 32x24x64
# 3. bfloat16: nested packed/padded and the FAF train step                     ~50 s
run 60 gpu_bf16 --dtype bfloat16 --sections nested,train --models faf --variants padded,packed \
  --shapes 32x24x64,8x48x128
# 4. inference throughput and single-utterance latency, float32               ~30 s
run 45 gpu_infer_f32 --sections infer,latency --shapes 32x24x64
# 5. the frame BiGRU alone: two scans against both directions fused, unroll 1/4  ~30 s
run 45 gpu_rnn_f32 --sections rnn --shapes 8x24x64,32x24x64
# 6. FAF train/eval against PyTorch with cuDNN (needs torch with CUDA; without it the
#    script records why it skipped)                                              ~60 s
echo "== gpu_torch_faf (limit 120s)"
timeout 120 $PY -m benchmarks.torch_faf --device cuda --shapes 8x24x64,32x24x64,8x48x128 \
  --out "$OUT/gpu_torch_faf.jsonl" >> "$OUT/gpu_logs.txt" 2>&1
echo "   exit $?"
tail -n 20 "$OUT/gpu_logs.txt"
