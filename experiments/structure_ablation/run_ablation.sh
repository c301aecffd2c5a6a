#!/usr/bin/env bash
# Reproduces the inner-structure ablation of issue 13 (docs: README.md next to this file).
# Each run: handaug-train on procedural hands with the demo's budget, then the two measures.
# About 5 min per run on 2 idle CPU cores, plus ~40 min for the three pose oracles.
set -euo pipefail
cd "$(dirname "$0")"
out=${OUT:-runs}
mkdir -p "$out"
R='{"n_blocks": 4, "ngf": 32, "residual": true}'
WHITE='{"image_size": 128, "length": 264, "background": "white"}'
S='{"structure": {"weight": 5.0}}'
train() {  # NAME [overrides...]
    local name=$1; shift
    [ -f "$out/$name/export/config.json" ] || handaug-train --config base.yaml --trainer.default_root_dir "$out/$name" "$@"
}
train A0_previous_demo --config ../../handaug/configs/demo.yaml --trainer.default_root_dir "$out/A0_previous_demo" \
    --model.generator_kwargs '{"n_blocks": 4, "ngf": 32}' --data.synthetic_kwargs '{"image_size": 64, "length": 264}' \
    --data.real_kwargs '{"image_size": 64, "length": 264}' --data.crop_size 48 --data.val_size 64 --data.crop_mode uniform
train A1_128_uniform --data.crop_mode uniform
train A2_hand_crops
train A3_residual --model.generator_kwargs "$R"
train A4_residual_structure --model.generator_kwargs "$R" --model.extra_losses '[structure]' --model.extra_loss_kwargs "$S"
train A5_plain_structure --model.extra_losses '[structure]' --model.extra_loss_kwargs "$S"
train A6_real_on_white --model.generator_kwargs "$R" --data.real_kwargs "$WHITE"
train A7_no_identity --model.generator_kwargs "$R" --data.real_kwargs "$WHITE" --model.lambda_identity 0
train A8_patch_d --model.generator_kwargs "$R" --data.real_kwargs "$WHITE" --model.discriminator patch \
    --model.discriminator_kwargs '{"ndf": 32, "n_layers": 3}'
train A10_pixel_d --model.generator_kwargs "$R" --data.real_kwargs "$WHITE" --model.discriminator pixel \
    --model.discriminator_kwargs '{"ndf": 32, "norm": "none"}'
C='{"colour_statistics": {"weight": 5.0}}'
train A11_colour_statistics --model.generator_kwargs "$R" --data.real_kwargs "$WHITE" \
    --model.extra_losses '[colour_statistics]' --model.extra_loss_kwargs "$C"

ckpts=()
for run in "$out"/A*/; do ckpts+=(--ckpt "$(basename "$run")=$run/export"); done
handaug-eval structure --image-size 128 --out "$out/structure" --no-progress "${ckpts[@]}"
python pose_consistency_runs.py --runs 3 --out "$out/pose_consistency.md" "$out"/A*/export
python oracle_probe.py --runs 2 --out "$out/oracle_probe.md" "A6=$out/A6_real_on_white/export" "A11=$out/A11_colour_statistics/export"
