#!/usr/bin/env bash
# Reproduces the trained artefacts shipped in hepinfer/models/trained/ (compact ResNet, BDT, NanoAOD BDT,
# ParticleNet) with their model cards, working points and figures, and the ResNet50 figures of the docs
# (Events and training), on this project's 2-core CPU machine.  Needs `pip install -e .[dev]`.
#
# Samples (never committed; SAMPLES defaults to samples/, which git ignores):
#   training: 24 ttbar + 16 QCD files of 1000 events (seeds 101-124 / 201-216): 21,862 jets after balancing
#   testing:   4 ttbar +  6 QCD files of 1000 events (seeds 901-904 / 951-956): 1813 top + 4202 QCD jets
# Generation took 29 min on the 2 shared cores (about 15 events/s per core with the substructure variables).
set -euo pipefail
cd "$(dirname "$0")/.."
S=${SAMPLES:-samples}
T=hepinfer/models/trained
hep=".venv/bin/hepinfer"

$hep generate --process ttbar --events 1000 --seed 101 --files 24 -o "$S/train/ttbar_{seed}.root" --jobs 2
$hep generate --process qcd   --events 1000 --seed 201 --files 16 -o "$S/train/qcd_{seed}.root"   --jobs 2
$hep generate --process ttbar --events 1000 --seed 901 --files 4  -o "$S/test/ttbar_{seed}.root"  --jobs 2
$hep generate --process qcd   --events 1000 --seed 951 --files 6  -o "$S/test/qcd_{seed}.root"    --jobs 2

# The compact ResNet (architecture: COMPACT_RESNET in hepinfer/models/__init__.py, chosen by measurement)
$hep train resnet --sample "$S/train/*.root" --test "$S/test/*.root" --epochs 12 --batch-size 128 --lr 2e-3 \
    --augment --seed 1 --device cpu --out $T/resnet

# The BDTs, on the full training sample
$hep train bdt --sample "$S/train/*.root" --test "$S/test/*.root" --seed 1 --out $T/bdt
$hep train bdt_nanoaod --sample "$S/train/*.root" --test "$S/test/*.root" --seed 1 --out $T/bdt_nanoaod

# ParticleNet, on the full training sample: 75 min allow 3 epochs on 2 CPU cores
$hep train particlenet --sample "$S/train/*.root" --test "$S/test/*.root" --epochs 6 --batch-size 64 --lr 2e-3 \
    --seed 1 --device cpu --max-minutes 75 --out $T/particlenet

# The smaller-sample ParticleNet of the docs' comparison (first 8 ttbar + 6 QCD training files), outside the package
$hep train particlenet --sample "$S/train/qcd_20[1-6].root" "$S/train/ttbar_10[1-8].root" --test "$S/test/*.root" \
    --epochs 6 --batch-size 32 --lr 1e-3 --seed 1 --device cpu --max-minutes 40 --out "$S/particlenet-small"

# ResNet50 (94 MB, never committed): the time estimate of the docs; drop --estimate to train it into the
# artefact cache (on CUDA when there is one: --device auto)
$hep train resnet50 --sample "$S/train/*.root" --epochs 3 --batch-size 32 --lr 1e-3 --seed 1 --device cpu --estimate

for m in particlenet resnet resnet50 bdt bdt_nanoaod; do $hep evaluate $m --sample "$S/test/*.root" --plots "$S/plots/$m"; done
