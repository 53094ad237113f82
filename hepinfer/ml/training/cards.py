"""Model cards: a short markdown file beside each trained artefact, written from its manifest.json
(so re-evaluating a model rewrites its card) and the model's declared validity domain, with the
figures that lie beside it."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

from hepinfer.ml.training import plots
from hepinfer.ml.training.roc import auc_text, pt_text, rate_text, rejection
from hepinfer.models.resolved import Model, resolve

WHAT_PLOTS = {
    plots.ROC: "ROC curve",
    plots.SCORES: "score distributions",
    plots.PT_BINS: "AUC and background rejection per pT bin",
    plots.LEARNING_CURVE: "learning curve",
}


def _source(model: Model) -> str:
    if not model.reads_constituents:
        return "the FatJet branches alone, which standard NanoAOD has (no PF candidates needed)"
    return "PFNano-shaped events (fat jets and their PF candidates)"


def _metrics_table(metrics: dict | None) -> str:
    if not metrics:
        return "Not evaluated on an independent sample yet.\n"
    rows = []
    for name, m in metrics.items():
        auc = auc_text(m)
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


def _domain(spec) -> str:
    d = spec.domain
    if d is None:
        return (
            "No validity domain is declared for this model: nothing records the jets it was trained for, "
            "so its scores carry no statement of where they hold, and every selected jet is scored.\n"
        )
    lines = [f"- **Valid for**: fat jets with {d.describe()}; outside this range its scores are extrapolations."]
    if d.sample:
        lines.append(f"- **Trained on**: {d.sample}.")
    if d.detector:
        lines.append(f"- **Detector response**: {d.detector}.")
    if d.not_for:
        lines.append(f"- **Limits**: {'; '.join(d.not_for)}.")
    return "\n".join(lines) + "\n\nThe figures per pT bin below show how the tagger holds inside this domain.\n"


def _sample(spec, sample: dict) -> str:
    lines = []
    jets, files = sample.get("jets"), sample.get("files")
    if jets:
        where = f" from {len(files)} file{'s' if len(files) != 1 else ''}" if files else ""
        lines.append(f"{jets.get('top', 0)} top and {jets.get('qcd', 0)} QCD jets{where} (truth-labelled).")
    if sample.get("pt_range"):
        lo, hi = sample["pt_range"]
        lines.append(f"Their pT spans {lo:g}-{hi:g} GeV.")
    if sample.get("weights"):
        lines.append(f"Training weights: {sample['weights']}.")
    if spec.domain is not None:
        lines.append(
            f"Jets selected in the model's domain ({spec.domain.describe()}); the events and the detector "
            "response as *Intended use and limits* says."
        )
    if not lines:
        return "Not recorded.\n"
    return " ".join(lines) + " The manifest's record of the sample:\n"


def _per_pt_bin(metrics: dict | None) -> str:
    measured = {name: m["per_pt_bin"] for name, m in (metrics or {}).items() if m.get("per_pt_bin")}
    if not measured:
        return "Not measured yet: `hepinfer evaluate MODEL --sample ... --update-card FOLDER` measures it.\n"
    out = []
    for name, bins in measured.items():
        rows = "".join(
            f"| {pt_text(r)} | {r['jets']['top']} / {r['jets']['qcd']} | {auc_text(r)} | {rejection(r, 30)} | "
            f"{rejection(r, 50)} |\n"
            for r in bins
        )
        notes = " ".join(f"{pt_text(r)} GeV: {r['note']}." for r in bins if r.get("note"))
        if any(r.get("rejection_bounded") for r in bins):
            notes += " >= N: fewer than one QCD jet of the bin passes; the figure is bounded by the bin's QCD jets."
        out.append(
            f"On the {name} (unweighted; every jet counts once):\n\n"
            "| pT (GeV) | jets (top / QCD) | AUC (± bootstrap) | 1/εB at εS=30% | 1/εB at εS=50% |\n"
            "|---|---|---:|---:|---:|\n" + rows + (f"\n{notes.strip()}\n" if notes else "")
        )
        points = list(bins[0].get("working_points", {}))
        if points:
            head = "| working point | " + " | ".join(f"{pt_text(r)} GeV" for r in bins) + " |\n"
            head += "|---|" + "---:|" * len(bins) + "\n"
            cells = "".join(
                f"| `{wp}` | "
                + " | ".join(
                    f"{rate_text(r['working_points'][wp]['signal_efficiency'])} / "
                    f"{rate_text(r['working_points'][wp]['mistag_rate'], 2)}"
                    for r in bins
                )
                + " |\n"
                for wp in points
            )
            out.append(
                "\n### Working points per pT bin\n"
                f"On the {name}, εS / εB (mistag rate) of each working point at its global score threshold, "
                "per pT bin: how a cut holds across pT.\n\n" + head + cells
            )
    return "\n".join(out)


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


def write_card(path: Path, model, manifest: dict) -> Path:
    """The model card of ``model`` at ``path`` from its ``manifest`` (command, sample, settings,
    training, metrics globally and per pT bin, working points, versions) and the model's validity
    domain (:class:`hepinfer.models.spec.Domain`)."""
    model = resolve(model)  # a name, a ModelSpec or a Model
    spec = model.spec
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

Built by `hepinfer.features` from {_source(model)}; see the docs' *Events and training* page.

## Intended use and limits
{_domain(spec)}
## Training sample
{_sample(spec, manifest.get("sample", {}))}
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
## Performance per pT bin
{_per_pt_bin(manifest.get("metrics"))}
## Working points
{_working_points(manifest.get("working_points"))}{_figures(path.parent)}
## Provenance
{json.dumps(manifest.get("versions", {}))}{size}; written {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())} on \
{platform.machine()}.
"""
    path.write_text(text)
    return path
