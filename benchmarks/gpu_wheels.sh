#!/usr/bin/env bash
# Download, here, the wheels that benchmarks/gpu_check.sh needs on a lent GPU machine whose image lacks them
# (its Python 3.12 has torch, Lightning, torchmetrics, OpenCV, safetensors and pluggy; not these):
#   bash benchmarks/gpu_wheels.sh [DIR]        # default DIR: .whl (ignored by git; carry it with the run)
# Versions: the ones this project is tested with (the README's install), for CPython 3.12 on x86-64 Linux.
set -euo pipefail
dir=${1:-.whl}
mkdir -p "$dir"
platforms=()
for p in manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_24_x86_64 manylinux_2_27_x86_64 manylinux_2_28_x86_64 \
         manylinux_2_31_x86_64 manylinux_2_34_x86_64 manylinux_2_35_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$p")
done
for spec in kornia==0.9.0 kornia_rs==0.2.0 albumentations==2.0.8 albucore==0.0.24 pydantic==2.14.4 pydantic_core==2.50.5 \
            annotated-types==0.8.0 typing-inspection==0.4.5 stringzilla==5.3.2 simsimd==6.5.16 jsonargparse==4.53.0 \
            docstring_parser==0.18.0 typeshed_client==2.15.0; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${platforms[@]}" -d "$dir" "$spec"
done
ls "$dir"
