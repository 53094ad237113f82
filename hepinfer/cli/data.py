"""``hepinfer generate``, ``hepinfer train``, ``hepinfer evaluate``: events and taggers."""

from __future__ import annotations

import shlex
import sys

from hepinfer.config import MODES
from hepinfer.models import SPECS


def cmd_generate(args) -> int:
    from hepinfer.ml.generation.generate import generate, generate_many

    kinds = {
        "progress": not args.no_progress,
        "layout": args.layout,
        "format": args.format,
        "pt_hat": tuple(args.pt_hat),
        "detector": args.detector,
    }
    if args.files == 1 and "{seed}" not in args.output:
        print(generate(args.process, args.events, args.seed, args.output, **kinds))
        return 0
    seeds = range(args.seed, args.seed + args.files)
    for out in generate_many(args.process, args.events, seeds, args.output, jobs=args.jobs, **kinds):
        print(out)
    return 0


def cmd_train(args) -> int:
    from hepinfer.ml.training import BDTSettings, TrainSettings, train

    settings = TrainSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        max_minutes=args.max_minutes,
        progress=not args.no_progress,
        augment=args.augment,
        estimate_only=args.estimate,
        resume=args.resume,
        init_from=args.init_from,
    )
    command = "hepinfer " + " ".join(shlex.quote(a) for a in (args.argv or sys.argv[1:]))
    result = train(
        args.model,
        args.sample,
        settings=settings,
        bdt_settings=BDTSettings(seed=args.seed),
        test=args.test,
        out_dir=args.out,
        max_jets=args.max_jets,
        command=command,
    )
    if args.estimate:
        print(f"{args.model}: {result['estimate']}")
    return 0


def cmd_evaluate(args) -> int:
    import contextlib

    if not args.json:
        return _evaluate(args)
    import json

    with contextlib.redirect_stdout(sys.stderr):  # the figures as text go to stderr, stdout holds the JSON
        result = _evaluate(args)
    print(json.dumps(result, indent=2))
    return 0


def _evaluate(args):
    from hepinfer.ml.training import evaluate, evaluate_into
    from hepinfer.ml.training.evaluation import TEST_SAMPLE

    chosen = {} if args.bootstrap is None else {"bootstrap": args.bootstrap}

    if args.update_card:
        if args.artefact or args.mode != "local":
            from hepinfer.errors import ConfigError

            raise ConfigError("--update-card evaluates the artefact in its folder, locally: no --artefact or --mode")
        result = evaluate_into(args.model, args.sample, args.update_card, plot=args.plot, **chosen)
        result = result["metrics"][TEST_SAMPLE]
        print(
            f"recorded in {args.update_card}/manifest.json and model_card.md "
            "(figures globally and per pT bin, working points, ROC, scores)"
        )
    else:
        result = evaluate(
            args.model,
            args.sample,
            artefact=args.artefact,
            mode=args.mode,
            url=args.url,
            plot=args.plot,
            plots_dir=args.plots,
            **chosen,
        )
    return result if args.json else 0


def register(sub) -> None:
    from hepinfer.ml.generation.detector import DETECTORS
    from hepinfer.ml.generation.generate import PROCESSES, PT_HAT_GEV
    from hepinfer.ml.generation.nanoaod import FORMATS, LAYOUTS

    s = sub.add_parser("generate", help="generate PFNano- or NanoAOD-shaped events with Pythia 8 + FastJet")
    s.add_argument("--process", required=True, choices=tuple(PROCESSES))
    s.add_argument("--events", type=int, required=True, help="events per file")
    s.add_argument("--seed", type=int, required=True, help="seed of the first file (then seed+1, ...)")
    s.add_argument("-o", "--output", required=True, help="FILE.root, or a pattern with {seed} for several files")
    s.add_argument("--files", type=int, default=1, help="number of files, one seed each, made in parallel")
    s.add_argument("--jobs", type=int, default=None, help="parallel processes (default: cores)")
    s.add_argument(
        "--layout",
        default="pfnano",
        choices=tuple(LAYOUTS),
        help="pfnano (default): fat jets with their PF candidates; pfnano-nocount: the same without "
        "FatJet_nConstituents (older PFNano); nanoaod: standard NanoAOD, no PF candidates",
    )
    s.add_argument(
        "--format",
        default="ttree",
        choices=FORMATS,
        help="ttree (default, as NanoAOD) or rntuple (as CMS's RNTuple NanoAOD output)",
    )
    s.add_argument(
        "--pt-hat",
        nargs=2,
        type=float,
        default=PT_HAT_GEV,
        metavar=("MIN", "MAX"),
        help=f"hard-process pT-hat range, GeV (default {PT_HAT_GEV[0]:g} {PT_HAT_GEV[1]:g})",
    )
    s.add_argument(
        "--detector",
        default="cms",
        choices=DETECTORS,
        help="cms (default): a parametrised CMS-like detector response (tracking efficiency, resolutions, "
        "thresholds); none: truth-level particles",
    )
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=cmd_generate)

    s = sub.add_parser("train", help="train a tagger on generated samples and export it with a model card")
    s.add_argument("model", choices=tuple(SPECS))
    s.add_argument("--sample", nargs="+", required=True, help="training files (globs), signal and background")
    s.add_argument("--test", nargs="+", default=None, help="independent files to evaluate the result on")
    s.add_argument("--epochs", type=int, default=20)
    s.add_argument("--batch-size", type=int, default=256)
    s.add_argument("--lr", type=float, default=3e-3)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--device", default="auto", help="auto | cpu | cuda")
    s.add_argument("--max-jets", type=int, default=None)
    s.add_argument("--max-minutes", type=float, default=None, help="bound the training time")
    s.add_argument("--out", default=None, help="folder for the artefact (default: the artefact cache)")
    s.add_argument("--augment", action="store_true", help="networks on jet images: random reflections in eta and phi")
    s.add_argument(
        "--estimate", action="store_true", help="networks: time a few batches, print how long training would take, stop"
    )
    s.add_argument(
        "--resume",
        action="store_true",
        help="networks: continue an interrupted run from its checkpoint in --out (saved after each epoch)",
    )
    s.add_argument(
        "--init-from",
        default=None,
        metavar="CHECKPOINT",
        help="networks: start from the best weights of another run's checkpoint.pt (fine-tuning)",
    )
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser(
        "evaluate",
        help="AUC, background rejection and working points of a model on labelled samples, globally and per pT bin",
    )
    s.add_argument("model", choices=tuple(SPECS))
    s.add_argument("--sample", nargs="+", required=True)
    s.add_argument("--artefact", default=None, help="evaluate this file instead of the cached artefact")
    s.add_argument("--mode", default="local", choices=MODES)
    s.add_argument("--url", default=None)
    s.add_argument("--plot", default=None, help="write the ROC curve to this PNG")
    s.add_argument(
        "--plots",
        default=None,
        help="write roc.png, scores.png (score distributions) and pt_bins.png (AUC and 1/eps_B per pT bin) "
        "to this folder",
    )
    s.add_argument(
        "--bootstrap",
        type=int,
        default=None,
        help="resamples for the AUC's uncertainty (default: as in the model cards; 0: none)",
    )
    s.add_argument(
        "--update-card",
        default=None,
        metavar="FOLDER",
        help="evaluate the artefact in FOLDER (its manifest.json and model_card.md beside it) and record the "
        "figures, working points and plots there, as for an independent test sample",
    )
    s.add_argument("--json", action="store_true", help="print the metrics as JSON")
    s.set_defaults(func=cmd_evaluate)
