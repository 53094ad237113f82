#!/usr/bin/env bash
# Reproduces the trained artefacts shipped in hepinfer/models/trained/ (compact ResNet, BDT, NanoAOD BDT,
# ParticleNet) with their model cards, working points, per-pT-bin figures and plots, and the docs'
# measurement of the detector response's effect, on this project's 2-core CPU machine.
# Needs `pip install -e .[dev]` and the samples of tools/generate_shipped.sh (SAMPLES, default samples/).
# A network's training that is interrupted continues from its last epoch when this script runs again
# (hepinfer train --resume).  STEPS picks parts: STEPS="bdt particlenet resnet truth" (the default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
S=${SAMPLES:-samples}
T=hepinfer/models/trained
hep=${HEPINFER:-.venv/bin/hepinfer}
STEPS=${STEPS:-bdt particlenet resnet truth}
has() { [[ " $STEPS " == *" $1 "* ]]; }

if has bdt; then  # seconds each
  $hep train bdt --sample "$S/train/*.root" --test "$S/test/*.root" --seed 1 --out $T/bdt --no-progress
  $hep train bdt_nanoaod --sample "$S/train/*.root" --test "$S/test/*.root" --seed 1 --out $T/bdt_nanoaod --no-progress
fi
if has particlenet; then  # the time budget decides the epochs on 2 CPU cores
  $hep train particlenet --sample "$S/train/*.root" --test "$S/test/*.root" --epochs 4 --batch-size 64 --lr 3e-3 \
    --seed 1 --device cpu --max-jets 16000 --max-minutes 65 --resume --out $T/particlenet --no-progress
fi
if has resnet; then  # the compact ResNet (architecture: COMPACT_RESNET in hepinfer/models/builtin_specs.py)
  $hep train resnet --sample "$S/train/*.root" --test "$S/test/*.root" --epochs 8 --batch-size 128 --lr 2e-3 \
    --augment --seed 1 --device cpu --max-minutes 30 --resume --out $T/resnet --no-progress
fi
if has truth; then  # the detector response's effect: the BDTs trained and tested at truth level, outside the package
  for m in bdt bdt_nanoaod; do
    $hep train $m --sample "$S/truth/train/*.root" --test "$S/truth/test/*.root" --seed 1 --out "$S/truth/$m" \
      --no-progress
    $hep evaluate $m --artefact "$S/truth/$m/xgboost.json" --sample "$S/test/*.root" --bootstrap 0 --json \
      > "$S/truth/$m-on-detector-level.json"
  done
fi
