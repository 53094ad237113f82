#!/usr/bin/env bash
# How the shipped ParticleNet weights (and the ResNet50 figures) were made on a lent GPU machine
# (Python 3.12 with torch; packages it lacks travel as wheels in .whl/, see the device tool).
# Stages: pn (generate + train ParticleNet) and resnet (train ResNet50; regenerates if needed).
# Samples: 36 ttbar + 28 QCD files of 1000 events for training (seeds 1001.., 2001..), 4 + 3 files
# for testing (seeds 3001.., 4001..), generated in parallel on the machine's cores.
set -euo pipefail
stage=${1:?stage: pn | resnet}
out=${OUT:-/tmp/out}
EVENTS=${EVENTS:-1000}     # events per file (a dry run on a CPU uses EVENTS=20 DEVICE=cpu EPOCHS=1)
DEVICE=${DEVICE:-cuda}
EPOCHS=${EPOCHS:-}
SAMPLES=${SAMPLES:-/tmp/samples}
mkdir -p "$out" "$SAMPLES"
if [ -d .whl ] && ! python3 -c "import pythia8mc, fastjet, uproot" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
hep="python3 -m hepinfer.cli"
gen() {  # process first-seed files events: generate unless every file is there already
  local s missing=0
  for ((s = $2; s < $2 + $3; s++)); do [ -f "$SAMPLES/$1_$s.root" ] || missing=1; done
  if [ "$missing" = 1 ]; then
    $hep generate --process "$1" --events "$4" --seed "$2" --files "$3" -o "$SAMPLES/$1_{seed}.root" --no-progress >/dev/null
  fi
}
t0=$(date +%s)
gen ttbar 1001 36 "$EVENTS"; gen qcd 2001 28 "$EVENTS"; gen ttbar 3001 4 "$EVENTS"; gen qcd 4001 3 "$EVENTS"
echo "samples ready after $(( $(date +%s) - t0 )) s: $(ls "$SAMPLES" | wc -l) files"
train=($SAMPLES/ttbar_10??.root $SAMPLES/qcd_20??.root)
test=($SAMPLES/ttbar_300?.root $SAMPLES/qcd_400?.root)
case "$stage" in
  pn)
    $hep train particlenet --sample "${train[@]}" --test "${test[@]}" --epochs "${EPOCHS:-20}" --batch-size 256 --lr 3e-3 \
      --seed 1 --device "$DEVICE" --max-minutes 3.5 --out "$out/particlenet" ${MAX_JETS:+--max-jets $MAX_JETS} --no-progress 2>&1 | tee "$out/particlenet.log" ;;
  resnet)
    $hep train resnet50 --sample "${train[@]}" --test "${test[@]}" --epochs "${EPOCHS:-15}" --batch-size 256 --lr 1e-3 \
      --seed 1 --device "$DEVICE" --max-minutes 3.5 --out /tmp/resnet50 ${MAX_JETS:+--max-jets $MAX_JETS} --no-progress 2>&1 | tee "$out/resnet50.log"
    mkdir -p "$out/resnet50" && cp /tmp/resnet50/manifest.json /tmp/resnet50/model_card.md "$out/resnet50/" ;;
esac
echo "stage $stage done after $(( $(date +%s) - t0 )) s"
