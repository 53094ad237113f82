"""Model cards: a short markdown file beside each trained artefact."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

from ...models import get_spec


def _source(model: str) -> str:
    from ...features import reads_constituents

    if not reads_constituents(model):
        return "the FatJet branches alone, which standard NanoAOD has (no PF candidates needed)"
    return "PFNano-shaped events (fat jets and their PF candidates)"


def _metrics_table(metrics: dict | None) -> str:
    if not metrics:
        return "Not evaluated on an independent sample yet.\n"
    return (
        "| sample | jets (top / QCD) | AUC | 1/εB at εS=30% | 1/εB at εS=50% |\n|---|---|---:|---:|---:|\n"
        + "".join(
            f"| {name} | {m['jets']['top']} / {m['jets']['qcd']} | {m['auc']:.4f} | {m['rejection_at_30']:.0f} | "
            f"{m['rejection_at_50']:.0f} |\n"
            for name, m in metrics.items()
        )
    )


def write_card(
    path: Path,
    model: str,
    *,
    command: str,
    sample: dict,
    settings: dict,
    training: dict,
    metrics: dict | None,
    versions: dict,
) -> Path:
    spec = get_spec(model)
    inputs = "\n".join(
        f"- `{t.name}` {t.dtype} (N, {', '.join(map(str, t.shape))}): {t.description}" for t in spec.inputs
    )
    outputs = "\n".join(
        f"- `{t.name}` {t.dtype} (N, {', '.join(map(str, t.shape))}): {t.description}" for t in spec.outputs
    )
    text = f"""# Model card: {spec.name}

{spec.description}.

## Inputs and outputs
{inputs}
{outputs}

Built by `hepinfer.features` from {_source(spec.name)}; see the docs' *Events and training* page.

## Training sample
Pythia 8.317 (pythia8mc) + FastJet, 13 TeV, pT-hat in [500, 700] GeV; ttbar with hadronic W decays
(signal: top-matched fat jets) and QCD dijets (background). Fat jets: anti-kT R=0.8, pT in
[550, 650] GeV, |eta| < 2. Classes balanced by subsampling.

```json
{json.dumps(sample, indent=2)}
```

## Training
Command: `{command}`
(`tools/train_shipped.sh` regenerates the samples and reruns the training of the shipped artefacts.)

```json
{json.dumps({"settings": settings, "result": {k: v for k, v in training.items() if k != "epochs"}}, indent=2)}
```

## Performance
{_metrics_table(metrics)}
## Provenance
{json.dumps(versions)}; written {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())} on {platform.machine()}.
"""
    path.write_text(text)
    return path
