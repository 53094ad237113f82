#!/usr/bin/env bash
# Reproduces the trained artefacts shipped in hepinfer/models/trained/ (ParticleNet, BDT, NanoAOD BDT) and the
# ResNet50 figures of the docs (Events and training), on this project's 2-core CPU machine.  Needs `pip install -e .[dev]`.
# Samples: 8 ttbar + 6 QCD files of 1000 events for training, 3 + 3 for testing (other seeds).
set -euo pipefail
cd "$(dirname "$0")/.."
S=${SAMPLES:-samples}
hep=".venv/bin/hepinfer"
$hep generate --process ttbar --events 1000 --seed 101 --files 8 -o "$S/train/ttbar_{seed}.root" --jobs 2
$hep generate --process qcd   --events 1000 --seed 201 --files 6 -o "$S/train/qcd_{seed}.root"   --jobs 2
$hep generate --process ttbar --events 1000 --seed 901 --files 3 -o "$S/test/ttbar_{seed}.root"  --jobs 2
$hep generate --process qcd   --events 1000 --seed 951 --files 3 -o "$S/test/qcd_{seed}.root"    --jobs 2
$hep train bdt --sample "$S/train/*.root" --test "$S/test/*.root" --seed 1 --out hepinfer/models/trained/bdt
$hep train bdt_nanoaod --sample "$S/train/*.root" --test "$S/test/*.root" --seed 1 --out hepinfer/models/trained/bdt_nanoaod
$hep train particlenet --sample "$S/train/*.root" --test "$S/test/*.root" --epochs 6 --batch-size 32 --lr 1e-3 \
    --seed 1 --device cpu --max-minutes 40 --out hepinfer/models/trained/particlenet
$hep train resnet50 --sample "$S/train/*.root" --test "$S/test/*.root" --epochs 3 --batch-size 32 --lr 1e-3 \
    --seed 1 --device cpu --max-minutes 40   # into the artefact cache: 94 MB, never committed
for m in particlenet resnet50 bdt bdt_nanoaod; do $hep evaluate $m --sample "$S/test/*.root" --plot "$S/roc_$m.png"; done
