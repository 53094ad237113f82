"""Model cards: a short markdown file beside each trained artefact, written from its manifest.json
(so re-evaluating a model rewrites its card), with the figures that lie beside it."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

from ...models import get_spec
from . import plots
from .metrics import rejection

WHAT_PLOTS = {
    plots.ROC: "ROC curve",
    plots.SCORES: "score distributions",
    plots.LEARNING_CURVE: "learning curve",
}


def _source(model: str) -> str:
    from ...features import reads_constituents

    if not reads_constituents(model):
        return "the FatJet branches alone, which standard NanoAOD has (no PF candidates needed)"
    return "PFNano-shaped events (fat jets and their PF candidates)"


def _metrics_table(metrics: dict | None) -> str:
    if not metrics:
        return "Not evaluated on an independent sample yet.\n"
    rows = []
    for name, m in metrics.items():
        auc = f"{m['auc']:.4f}" + (f" ± {m['auc_error']:.4f}" if m.get("auc_error") is not None else "")
        eff = (
            f"{100 * m['efficiency_at_1']:.1f} % | {100 * m['efficiency_at_10']:.1f} %"
            if "efficiency_at_1" in m
            else "– | –"
        )
        rows.append(
            f"| {name} | {m['jets']['top']} / {m['jets']['qcd']} | {auc} | {rejection(m, 30)} | "
            f"{rejection(m, 50)} | {eff} |\n"
        )
    head = (
        "| sample | jets (top / QCD) | AUC (± bootstrap) | 1/εB at εS=30% | 1/εB at εS=50% | εS at εB=1% "
        "| εS at εB=10% |\n|---|---|---:|---:|---:|---:|---:|\n"
    )
    files = "".join(f"\n{name}: {', '.join(m['files'])}." for name, m in metrics.items() if m.get("files"))
    if any(m.get("rejection_bounded") for m in metrics.values()):
        files += "\n\n>= N: fewer than one QCD jet passes; the figure is bounded by the QCD jets of the sample."
    return head + "".join(rows) + files + "\n"


def _working_points(points: dict | None) -> str:
    if not points:
        return "None yet: `hepinfer evaluate MODEL --sample ... --update-card FOLDER` records them.\n"
    rows = "".join(
        f"| `{name}` | {wp['target']} | {wp['threshold']:.6g} | {100 * wp['signal_efficiency']:.1f} % | "
        f"{100 * wp['mistag_rate']:.2f} % |\n"
        for name, wp in points.items()
    )
    return (
        "A jet is tagged when its score P(top) is above the threshold.  Measured on the independent "
        "test sample; `working_points` in manifest.json holds them for code, and "
        "`hepinfer run --working-point NAME` cuts at one.\n\n"
        "| working point | defined by | score threshold | εS | εB (mistag rate) |\n|---|---|---:|---:|---:|\n" + rows
    )


def _learning(training: dict) -> str:
    epochs = training.get("epochs")
    if not epochs:
        return ""
    rows = "".join(
        f"| {e['epoch']} | {e['train_loss']:.4f} | {e['val_loss']:.4f} | {e['val_accuracy']:.4f} | "
        f"{'–' if e.get('val_auc') is None else format(e['val_auc'], '.4f')} | {e['seconds']:.0f} |\n"
        for e in epochs
    )
    return (
        "\n| epoch | train loss | validation loss | validation accuracy | validation AUC | seconds |\n"
        "|---:|---:|---:|---:|---:|---:|\n" + rows
    )


def _figures(folder: Path) -> str:
    found = [f"![{what}]({name})" for name, what in WHAT_PLOTS.items() if (folder / name).exists()]
    return "\n## Figures\n" + "\n".join(found) + "\n" if found else ""


def write_card(path: Path, model: str, manifest: dict) -> Path:
    """The model card of ``model`` at ``path`` from its ``manifest`` (command, sample, settings,
    training, metrics, working points, versions)."""
    spec = get_spec(model)
    path = Path(path)
    inputs = "\n".join(
        f"- `{t.name}` {t.dtype} (N, {', '.join(map(str, t.shape))}): {t.description}" for t in spec.inputs
    )
    outputs = "\n".join(
        f"- `{t.name}` {t.dtype} (N, {', '.join(map(str, t.shape))}): {t.description}" for t in spec.outputs
    )
    training = manifest.get("training", {})
    result = {k: v for k, v in training.items() if k not in ("epochs", "curve")}
    size = f"; artefact {manifest['bytes'] / 1e6:.2f} MB" if manifest.get("bytes") else ""
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
{json.dumps(manifest.get("sample", {}), indent=2)}
```

## Training
Command: `{manifest.get("command", "")}`
(`tools/train_shipped.sh` regenerates the samples and reruns the training of the shipped artefacts.)

```json
{json.dumps({"settings": manifest.get("settings", {}), "result": result}, indent=2)}
```
{_learning(training)}
## Performance
{_metrics_table(manifest.get("metrics"))}
## Working points
{_working_points(manifest.get("working_points"))}{_figures(path.parent)}
## Provenance
{json.dumps(manifest.get("versions", {}))}{size}; written {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())} on \
{platform.machine()}.
"""
    path.write_text(text)
    return path
