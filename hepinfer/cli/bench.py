"""``hepinfer bench STUDY``: the benchmark studies of :data:`hepinfer.operations.bench.STUDIES`.  The
studies' options become this command's options; the harness does the rest."""

from __future__ import annotations

import argparse


def _options() -> dict:
    """flag -> (Option, help text naming each study that uses it and its default there)."""
    from hepinfer.operations.bench import STUDIES

    found: dict = {}
    for s in STUDIES.values():
        for param, opt in s.options.items():
            first, helps = found.setdefault(opt.flag, (opt, []))
            if (first.type, first.nargs, first.choices) != (opt.type, opt.nargs, opt.choices):
                raise TypeError(f"bench option {opt.flag}: {s.name} declares it unlike another study")
            default = s.params[param]
            helps.append(f"{s.name}: {opt.help}" + ("" if default is None else f" (default {default})"))
    return {flag: (opt, "; ".join(helps)) for flag, (opt, helps) in found.items()}


def cmd_bench(args) -> int:
    """Run the study with the options given on the command line; its exit code."""
    from hepinfer.operations.bench.harness import main

    given = {flag: getattr(args, opt.dest) for flag, (opt, _) in _options().items() if hasattr(args, opt.dest)}
    return main(args.study, args.out, quick=args.quick, options=given)


def register(sub) -> None:
    from hepinfer.operations.bench import STUDIES

    s = sub.add_parser("bench", help="benchmarks: " + " | ".join(STUDIES))
    s.add_argument("study", choices=tuple(STUDIES), help="; ".join(f"{n}: {st.help}" for n, st in STUDIES.items()))
    for flag, (opt, text) in _options().items():
        s.add_argument(flag, type=opt.type, nargs=opt.nargs, choices=opt.choices, default=argparse.SUPPRESS, help=text)
    s.add_argument("--quick", action="store_true", help="the CI size of the study (its quick preset)")
    s.add_argument("--out", default="bench-out", help="folder of the CSV, markdown and PNG (default bench-out)")
    s.set_defaults(func=cmd_bench)
