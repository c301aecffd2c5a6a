#!/usr/bin/env bash
# The one-command GPU check of issues 18 and 19, for a bare GPU machine (well under 10 minutes on an H200):
#   bash benchmarks/gpu_check.sh [OUT_DIR]      # from the repository root; OUT_DIR default: $OUT or ./gpu-check
# 1. benchmarks/transform_speed.py at 256 px, batch 64: SynthToReal against eager fp32 and plain bf16 autocast;
# 2. benchmarks/loop_overhead.py: a ResNet-50 training step alone and with each SynthToReal mode;
# 3. benchmarks/adapters_in_workers.py: the three adapters in spawn and fork DataLoader workers, and the batched path;
# 4. benchmarks/train_speed.py: handaug-train's step against a plain PyTorch H-GAN step at 256 px, batches 8 and 32;
# 5. benchmarks/translate_speed.py: handaug-translate on 1,024 PNGs of 256 px against a naive one-image loop.
# Each stage runs under its own time limit and writes its log (and JSON) to OUT_DIR, and the transform and training
# stages write torch.profiler tables of their default paths to OUT_DIR/profiles (where the time goes, for a figure
# below its goal). The last thing printed is one table of the figures against the issues' goals
# (benchmarks/gpu_summary.py).
# Packages the machine lacks (kornia, albumentations and theirs, jsonargparse) are installed from ./.whl if present
# (make it here with `bash benchmarks/gpu_wheels.sh`, then carry .whl with the run)
# (wheels for the machine's Python), into /tmp/site; handaug itself is installed without dependencies.
# Dry run on a machine without a GPU (what tests/test_gpu_check_script.py runs, about a minute):
#   GPU_CHECK_DEVICE=cpu bash benchmarks/gpu_check.sh OUT_DIR
# runs the same five stages and the same summary on the CPU at tiny sizes, so a script broken by a
# change is found here, not in the few minutes a GPU is lent.
set -u
out=${1:-${OUT:-gpu-check}}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 NO_ALBUMENTATIONS_UPDATE=1 HANDAUG_OFFLINE=1
# One compilation cache for every stage: a graph compiled by one script is a cache hit in the next.
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/handaug-inductor-cache}
py=${PYTHON:-python3}
start=$(date +%s)
device=${GPU_CHECK_DEVICE:-cuda}
# The wheels are for the GPU machine's Python; the CPU dry run uses this environment as it is.
if [ "$device" = cuda ] && ls .whl/*.whl >/dev/null 2>&1; then
    $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
$py -c "import handaug.integrations" 2>/dev/null ||
    $py -m pip install -q --no-index --no-deps --no-build-isolation --no-compile -e . >"$out/install.log" 2>&1 ||
    { tail -5 "$out/install.log"; exit 1; }
echo "installed in $(( $(date +%s) - start )) s; $($py -c 'import sys, torch; print(torch.__version__, torch.cuda.get_device_name() if sys.argv[1] == "cuda" else "CPU dry run")' "$device")"

stage() {  # stage NAME SECONDS COMMAND...: run it under a limit, log to $out/NAME.log, print its last lines
    local name=$1 limit=$2
    shift 2
    local t0
    t0=$(date +%s)
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    echo "== $name: exit $rc after $(( $(date +%s) - t0 )) s (limit $limit s)"
    grep -v -i "warning\|warn(" "$out/$name.log" | tail -n 14
}

if [ "$device" = cuda ]; then
    transform_args=(--device cuda --sizes 256 --batch 64 --repeats 10)
    loop_args=(--device cuda)
    train_args=(--device cuda --batches 8 32)
    translate_args=(--accelerator gpu --images 1024 --batch-size 64 --num-workers 8 --repeats 2)
else  # the dry run: every stage and the summary, at sizes that take seconds on two cores
    transform_args=(--device cpu --sizes 64 --batch 4 --repeats 2)
    loop_args=(--device cpu --size 64 --batch 4 --steps 1 --repeats 2 --warmup 1)
    train_args=(--device cpu --size 32 --batches 1 --ngf 4 --ndf 4 --n-blocks 1 --windows 1 --window-seconds 0.01 --warmup 1)
    translate_args=(--accelerator cpu --images 8 --size 64 --batch-size 4 --num-workers 1 --repeats 1)
fi
stage transform 170 $py benchmarks/transform_speed.py "${transform_args[@]}" --json "$out/transform.json" --profile "$out/profiles"
stage loop 100 $py benchmarks/loop_overhead.py "${loop_args[@]}" --json "$out/loop.json"
stage adapters 60 $py benchmarks/adapters_in_workers.py --device "$device"
stage train 140 $py benchmarks/train_speed.py "${train_args[@]}" --json "$out/train.json" --profile "$out/profiles"
stage translate 100 $py benchmarks/translate_speed.py "${translate_args[@]}" --json "$out/translate.json"
echo "== total $(( $(date +%s) - start )) s"
$py benchmarks/gpu_summary.py "$out"
