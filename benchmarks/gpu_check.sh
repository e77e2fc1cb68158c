#!/usr/bin/env bash
# Issue #17's GPU table, prepared for a GPU machine lent for a few minutes (benchmarks/README.md, *GPU*).
#
#   bash benchmarks/gpu_check.sh prepare   # here, with network: wheels the GPU image lacks, the graphs' files
#   bash benchmarks/gpu_check.sh real      # there: a GPU equation check, then DOUBAN, IMDB and AMAZON
#   bash benchmarks/gpu_check.sh large     # there: AMAZON-1 scale and synthetic10m (~10M edges)
#
# Flags after the stage go to step_time.py, after the stage's own (a dry run on a CPU: `real --tiny --reps=1 --nopyg`,
# since --pyg_python and --pyg_device given make PyG required and a CPU torch is refused).
#
# `prepare` writes .whl/ (jraph and ml_collections, which the GPU image does not hold; it has JAX with CUDA,
# torch with CUDA and torch_geometric) and .gpu_data/ (a copy of the published graphs' files from
# $HGNN_IMA_DATA_DIR, default ../shared/datasets, which does not travel), both ignored by git
# (.git/info/exclude): name both in the device tool's `carry`. The other stages run from the repository root
# there, install the wheels into /tmp/site, and write JSON lines, the report and logs under $OUT (default
# ./gpu_out). Each stage bounds its parts with `timeout` to end within the tool's 10-minute command limit.
# Each framework runs in its own processes as on the CPU (step_time.py); ours under XLA's GPU defaults,
# PyG with --pyg_device=cuda, glibc malloc for both (the allocator is not what a GPU step waits on).
set -uo pipefail
cd "$(dirname "$0")/.."
stage="${1:-}"
shift || true
OUT="${OUT:-$PWD/gpu_out}"

case "$stage" in
  prepare)
    set -e
    mkdir -p .whl .gpu_data
    for d in /.whl/ /.gpu_data/ /gpu_out/; do grep -qxF "$d" .git/info/exclude 2>/dev/null || echo "$d" >> .git/info/exclude; done
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux2014_x86_64 -d .whl jraph==0.0.6.dev0 "ml_collections>=1.0,<2"
    src="${HGNN_IMA_DATA_DIR:-$(cd .. && pwd)/shared/datasets}"
    for g in douban imdb amazon; do cp -r "$src/$g" .gpu_data/; done
    du -sh .whl .gpu_data
    echo "carry: [\".whl\", \".gpu_data\"]"
    exit 0
    ;;
  real | large) ;;
  *)
    echo "usage: bash benchmarks/gpu_check.sh prepare|real|large" >&2
    exit 2
    ;;
esac

mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "no wheels in .whl/: run 'bash benchmarks/gpu_check.sh prepare' here and carry .whl" >&2; exit 1; }
export PYTHONPATH="/tmp/site:$PWD" HGNN_IMA_DATA_DIR="$PWD/.gpu_data" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" 2>&1
python3 -c "import jax, torch, torch_geometric as g; print('jax', jax.__version__, jax.devices()); \
print('torch', torch.__version__, torch.cuda.is_available(), 'pyg', g.__version__)" 2>&1 | tee "$OUT/versions.txt"

common=(--pyg_python=python3 --pyg_device=cuda --allocators=glibc
  --ours_threads=default --pyg_omp=unset --pyg_threads=1 --pyg_check_steps=0)
if [ "$stage" = real ]; then
  # The equations on the GPU: the model against the float64 dense reference (80 s on 2 CPU cores).
  timeout 150 python3 -m pytest -q -x -p no:cacheprovider tests/test_model_reference.py 2>&1 | tail -5 \
    | tee "$OUT/tests.txt"
  timeout 390 python3 benchmarks/step_time.py --graphs=douban,imdb,amazon --models=hgnn_ima,hgt_late "${common[@]}" \
    --steps=20 --warmup=3 --reps=2 --seeds=5 --seed_graphs=douban,imdb,amazon --out="$OUT/gpu_real.jsonl" \
    "$@" 2> "$OUT/gpu_real.log"
  echo "step_time.py exit $?"
else
  # The 10M-edge graph is built on the host first (minutes on 16 cores); HGT-late is left out there to fit.
  timeout 200 python3 benchmarks/step_time.py --graphs=synthetic_amazon1 --models=hgnn_ima,hgt_late "${common[@]}" \
    --steps=10 --warmup=2 --reps=2 --seeds=0 --out="$OUT/gpu_large.jsonl" "$@" 2> "$OUT/gpu_amazon1.log"
  echo "step_time.py (AMAZON-1 scale) exit $?"
  timeout 340 python3 benchmarks/step_time.py --graphs=synthetic10m --models=hgnn_ima "${common[@]}" \
    --steps=5 --warmup=1 --reps=1 --seeds=0 --out="$OUT/gpu_large.jsonl" "$@" 2> "$OUT/gpu_10m.log"
  echo "step_time.py (synthetic10m) exit $?"
fi
python3 benchmarks/report.py "$OUT"/gpu_*.jsonl > "$OUT/report.md" 2>&1
cat "$OUT/report.md"
