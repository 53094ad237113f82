"""``hepinfer demo``: per-model check, local against embedded-Triton scores and jets/s."""

from __future__ import annotations

import sys

from hepinfer.cli.arguments import add_models, model_list


def cmd_demo(args) -> int:
    from hepinfer.ml.demo import compare, format_table

    rows = compare(
        model_list(args.models),
        jets=args.jets,
        url=args.url,
        chunk=args.chunk,
        seed=args.seed,
        events=args.events,
        toy=args.toy,
    )
    print()
    print(format_table(rows))
    bad = [r.model for r in rows if not r.agree]
    if bad:
        print(f"\nlocal and remote scores DISAGREE for {', '.join(bad)}", file=sys.stderr)
        return 1
    print("\nlocal and remote scores agree to 1e-5 for every model")
    return 0


def register(sub) -> None:
    s = sub.add_parser("demo", help="per-model check: score the same jets locally and on Triton, compare")
    add_models(s)
    s.add_argument("--events", type=int, default=400, help="generated ttbar and QCD events each")
    s.add_argument("--toy", action="store_true", help="score toy arrays instead of generated jets")
    s.add_argument("--jets", type=int, default=2000, help="with --toy: jets per model")
    s.add_argument("--chunk", type=int, default=256, help="jets per scoring call")
    s.add_argument("--url", default=None, help="use this server instead of starting the embedded one")
    s.add_argument("--seed", type=int, default=1)
    s.set_defaults(func=cmd_demo)
