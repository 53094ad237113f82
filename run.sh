#!/usr/bin/env bash
# The two commands of the README:
#   ./run.sh main   set everything up, then run the main job (hepinfer run) on the embedded Triton server
#   ./run.sh test   set everything up, then run the test suite
# "Set up" = a virtual environment in .venv with what the command needs (main: the main job's extras;
# test: hepinfer[dev]), at the releases of constraints.txt, the model artefacts and the Triton
# server's own environment in $HEPINFER_HOME (default ~/.cache/hepinfer). Re-runs reuse them.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" - <<'PY' || { echo "run.sh: hepinfer needs Python 3.11 (set PYTHON=...)" >&2; exit 2; }
import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)
PY

pip_install() {  # quiet; the full log is shown only when pip fails
  .venv/bin/python -m pip install --disable-pip-version-check "$@" > .venv/pip.log 2>&1 \
    || { cat .venv/pip.log >&2; echo "run.sh: pip install $* failed (log above, also in .venv/pip.log)" >&2; exit 1; }
}

# the main job (hepinfer run): events, coffea on Dask, local and remote inference, the embedded server
MAIN_EXTRAS=generate,analysis,local-cpu,serve

setup() {  # $1: the extras to install
  if [ ! -x .venv/bin/python ]; then "$PYTHON" -m venv .venv; fi
  echo "run.sh: installing hepinfer[$1] into .venv ..."
  pip_install --upgrade pip
  pip_install -c constraints.txt -e ".[$1]"
}

browser() {  # the browser test needs Debian's chromium: installed when we may (root with apt), else it skips
  if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "run.sh: installing chromium for the browser test ..."
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium \
        || { apt-get update -q; DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }; } > .venv/apt.log 2>&1 \
      || echo "run.sh: could not install chromium (see .venv/apt.log); the browser test will be skipped" >&2
  fi
}

fleet_tools() {  # the serving fleet (hepinfer fleet) runs Debian's haproxy and prometheus: installed when we may
  if { ! command -v haproxy >/dev/null && [ ! -x /usr/sbin/haproxy ]; } || ! command -v prometheus >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "run.sh: installing haproxy and prometheus for the serving fleet ..."
      { DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy prometheus \
          || { apt-get update -q; DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy prometheus; }; } \
          > .venv/apt-fleet.log 2>&1 \
        || echo "run.sh: could not install haproxy / prometheus (see .venv/apt-fleet.log); the fleet tests will be skipped" >&2
    fi
  fi
}

case "${1:-}" in
  main)
    # the demo sample (generated once), the embedded server, a LocalCluster of 2 workers, remote
    # inference, then the same job with local inference to check nothing changes; summary + plots
    # (the job installs the shipped trained models it runs; the server's environment is built here)
    shift; setup "$MAIN_EXTRAS"
    .venv/bin/hepinfer server setup > /dev/null
    exec .venv/bin/hepinfer run --mode remote --executor dask --cluster local --workers 2 --chunksize 100 \
      --check-local --output output/summary.json --plots output/plots "$@" ;;
  test)
    shift; setup dev; .venv/bin/hepinfer setup; browser; fleet_tools
    set +e
    .venv/bin/python -m pytest "$@"
    rc=$?
    # pytest's 5 = "no tests collected": never a pass
    if [ $rc -eq 5 ]; then echo "run.sh: pytest collected no tests" >&2; exit 1; fi
    exit $rc ;;
  *)
    echo "usage: ./run.sh main|test [args]" >&2; exit 2 ;;
esac
