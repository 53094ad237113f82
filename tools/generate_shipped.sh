#!/usr/bin/env bash
# Generates the samples of the shipped taggers (never committed; SAMPLES defaults to samples/, which
# git ignores): ttbar (hadronic tops) and QCD dijets in the pT-hat bins of TRAINING_PT_HAT_BINS
# (hepinfer/ml/generation/generate.py), 1000 events per file, through the CMS-like detector response
# (hepinfer generate --detector cms); and the same at truth level (--detector none) for the docs'
# measurement of the detector response's effect.
#
#   train/       3 ttbar + 3 QCD files per bin, seeds 1000 + 100*bin + file (ttbar), + 50 (QCD)
#   test/        1 ttbar + 1 QCD file per bin, seeds 3000 + 100*bin (+ 50): seeds no training file uses
#   truth/train, truth/test: 1 ttbar + 1 QCD file per bin, seeds + 10000, --detector none
set -euo pipefail
cd "$(dirname "$0")/.."
S=${SAMPLES:-samples}
hep=${HEPINFER:-.venv/bin/hepinfer}
BINS=("200 400" "400 700" "700 1100" "1100 1700" "1700 2800")
gen() {  # gen DETECTOR FOLDER SEED_BASE FILES
  local det=$1 dir=$2 base=$3 files=$4 b=0
  for bin in "${BINS[@]}"; do
    for proc in ttbar qcd; do
      local seed=$((base + 100 * b))
      [ "$proc" = qcd ] && seed=$((base + 100 * b + 50))
      $hep generate --process $proc --pt-hat $bin --detector "$det" --events 1000 --seed $seed --files "$files" \
        -o "$S/$dir/${proc}_{seed}.root" --jobs 2 --no-progress
    done
    b=$((b + 1))
  done
}
gen cms train 1000 3
gen cms test 3000 1
gen none truth/train 11000 1
gen none truth/test 13000 1
