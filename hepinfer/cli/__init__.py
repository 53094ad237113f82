"""The ``hepinfer`` command: this module assembles the command groups, one module each; every command
parses its arguments and calls the library::

    hepinfer setup                      build the model artefacts and the server environment
    hepinfer run [--input FILES] ...    the main job: the example processor over files, local / remote /
                                        auto, on a Dask cluster; summary JSON and plots
    hepinfer serve [--models ...]       the embedded Triton server until SIGINT / SIGTERM
    hepinfer fleet up|status|export     replicas behind HAProxy with an autoscaler (foreground) / its
                                        status / values for SuperSONIC's Helm chart
    hepinfer demo                       per-model check: local vs embedded-Triton scores, jets/s
    hepinfer bench STUDY [--quick]      benchmark studies (CSV, markdown and PNG in --out)
    hepinfer profile [--quick]          measure serving configurations per model (JSON + PNG for plan)
    hepinfer plan --profile F --demand  serving configurations and devices for a demand, from profiles
    hepinfer models build|list|pull     build the artefacts / list every model and where it came from /
                                        save the spec of a model a server has
    hepinfer repo build OUT             write a Triton model repository (embedded or production)
    hepinfer server setup               create the server's numpy<2 environment
    hepinfer generate ...               generate PFNano-shaped events with Pythia 8 + FastJet
    hepinfer train MODEL --sample ...   train a tagger on generated samples
    hepinfer evaluate MODEL --sample .. AUC and background rejection of a model
"""

from __future__ import annotations

import argparse
import sys

from hepinfer.cli import artefacts, bench, data, demo, fleet, plan, profile, run, serve
from hepinfer.errors import HepinferError
from hepinfer.logs import console

GROUPS = (artefacts, run, serve, fleet, demo, bench, profile, plan, data)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hepinfer", description="ML inference for collider analyses, local or on Triton")
    sub = p.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else None
    console()
    try:
        return args.func(args)
    except HepinferError as err:
        print(f"hepinfer: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
