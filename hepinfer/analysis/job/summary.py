"""What a run reports: the JSON summary, its text and HTML forms, and the comparison of two runs."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


def hist_to_dict(h) -> dict:
    """A hist.Hist as plain JSON: axes (categories or bin edges) and bin values."""
    import hist

    axes = []
    for ax in h.axes:
        entry = {"name": ax.name, "label": ax.label}
        if isinstance(ax, (hist.axis.StrCategory, hist.axis.IntCategory)):
            entry["categories"] = list(ax)
        else:
            entry["edges"] = [float(e) for e in ax.edges]
        axes.append(entry)
    return {"axes": axes, "values": h.values().tolist()}


def same_result(a: dict, b: dict) -> bool:
    """Identical cut flow and histograms (bin for bin, under- and overflow included, exactly)."""
    import numpy as np

    if {k: int(v) for k, v in a["cutflow"].items()} != {k: int(v) for k, v in b["cutflow"].items()}:
        return False
    return all(np.array_equal(a["hists"][k].values(flow=True), b["hists"][k].values(flow=True)) for k in a["hists"])


def jets_by_server(inference: dict, by_server: dict | None) -> dict[str, dict[str, int]]:
    """Per model, the jets scored on each server (URL) and ``local`` (local mode, fallbacks, auto
    without a server); {} when the run's calls gave no reports (dask-awkward graphs)."""
    if not by_server:
        return {}
    return {
        m: {**{u: int(n) for u, n in by_server.get(m, {}).items()}, "local": int(c["local_jets"])}
        for m, c in inference.items()
    }


def servers_line(summary: dict) -> str | None:
    """Jets per server and local, per model: ``jets by server: particlenet: grpc://a:8001 60, local 0; ...``."""
    by_server = summary.get("jets_by_server")
    if summary["mode_requested"] == "local" or not by_server:
        return None
    per_model = [f"{m}: " + ", ".join(f"{u} {n}" for u, n in counts.items()) for m, counts in by_server.items()]
    return "jets by server: " + "; ".join(per_model)


def mode_used(inference: dict) -> dict[str, str]:
    used = {}
    for model, counts in inference.items():
        remote, local = int(counts["remote_jets"]), int(counts["local_jets"])
        used[model] = (
            "remote"
            if remote and not local
            else "local"
            if local and not remote
            else (f"mixed ({remote} remote, {local} local)" if remote else "no jets scored")
        )
    return used


def make_summary(
    settings,
    out: dict,
    *,
    url: str | None,
    embedded: bool,
    wall_s: float,
    setup_s: float,
    skipped: dict[str, str],
    check: dict | None,
    choice: dict | None = None,
    serving: dict | None = None,
    server: dict | None = None,
) -> dict:
    """The run summary (as written to JSON) from the settings and the processor's output.  ``choice``:
    ``models_requested`` (the names given, or "auto"), ``skipped_models`` {model: why} and
    ``cms_taggers`` (CMS's tagger scores found in the files, histogrammed as ``cms_score``).
    ``serving``: {model: engine, device, precision, compiled, declared, reduced} as the server says
    (None for a local run).  ``selection``: the fat jets selected (hepinfer.analysis.selection), each
    model's ``domain``, the jets ``outside_domain`` per model and ``by_pt_bin``; ``rank_correlation``:
    per model and CMS tagger the files carry, Spearman's rank correlation over the jets both scored.
    ``server``: the embedded server's ``host``, ``token`` and ``tls`` (hepinfer.analysis.job.access), and
    ``unreachable`` {worker host: {reason, detail}}: the workers that could not use the server.
    ``jets_by_server``: per model, the jets scored on each server (URL) and ``local``."""
    from hepinfer import __version__
    from hepinfer.analysis.cms_compare import rank_correlations
    from hepinfer.analysis.selection import pt_bin_rows, selection_for
    from hepinfer.models.catalogue import weights_note

    cutflow = {k: int(v) for k, v in out["cutflow"].items()}
    inference = {m: {k: int(v) for k, v in c.items()} for m, c in out["inference"].items()}
    models = settings.models
    specs = {m.name: m.spec for m in settings.resolved}
    domains = {m: specs[m].domain for m in models}
    selection = selection_for(domains.values(), settings.pt_min, settings.pt_max, settings.eta_max)
    hists = out["hists"]
    summary = {
        "hepinfer": __version__,
        "inputs": list(settings.inputs),
        "skipped_files": skipped,
        "models": {
            m: {"weights": weights_note(specs[m]), "domain": d.describe() if d else "none declared"}
            for m, d in domains.items()
        },
        "models_requested": (choice or {}).get("models_requested", list(models)),
        "skipped_models": (choice or {}).get("skipped_models", {}),
        "cms_taggers": (choice or {}).get("cms_taggers", []),
        "mode_requested": settings.config.mode,
        "mode_used": mode_used(inference),
        "url": url if settings.config.mode != "local" else None,
        "embedded_server": embedded,
        "server": server if settings.config.mode != "local" else None,
        "serving": serving if settings.config.mode != "local" else None,
        "executor": settings.executor,
        "cluster": settings.cluster if settings.executor == "dask" else None,
        "workers": settings.workers,
        "chunksize": settings.chunksize,
        "events": cutflow["events"],
        "selection": selection.as_dict(),
        "fatjets_selected": cutflow["selected_fatjets"],
        "fatjets_scored": {m: inference[m]["remote_jets"] + inference[m]["local_jets"] for m in models},
        "outside_domain": {m: cutflow.get(f"outside_domain_{m}", 0) for m in models},
        "tagged": {m: cutflow[f"tagged_{m}"] for m in models},
        "by_pt_bin": pt_bin_rows(hists["pt_selected"], hists["pt"], selection, models) if "pt" in hists else [],
        "rank_correlation": rank_correlations(out.get("pairs")),
        "inference": inference,
        "jets_by_server": jets_by_server(inference, out.get("jets_by_server")),
        "wall_s": round(wall_s, 3),
        "events_per_s": round(cutflow["events"] / wall_s, 2),
        "setup_s": round(setup_s, 3),
        "cutflow": cutflow,
        "settings": {
            "threshold": settings.threshold,
            "working_point": settings.working_point,
            "schema": settings.schema,
            "treename": settings.treename,
            "htcondor": asdict(settings.htcondor) if settings.cluster == "htcondor" else None,
        },
        "histograms": {name: hist_to_dict(h) for name, h in hists.items()},
    }
    if check is not None:
        summary["local_check"] = check
    return summary


@dataclass
class RunResult:
    """What a run gives back in Python: the summary (as written to JSON) and the hist.Hist objects."""

    summary: dict
    hists: dict

    def __str__(self) -> str:
        return format_summary(self.summary)

    def _repr_html_(self) -> str:
        import html

        s = self.summary
        head = (
            f"<p><b>{s['events']}</b> events in {s['wall_s']:.2f} s = <b>{s['events_per_s']:,.1f}</b> events/s "
            f"({s['workers']} worker(s), {s['executor']}{'/' + s['cluster'] if s['cluster'] else ''}); "
            f"mode requested <b>{s['mode_requested']}</b>; {s['fatjets_selected']} fat jets selected "
            f"({html.escape(_selection_text(s['selection']))})</p>"
        )
        rows = "".join(
            f"<tr><td>{m}</td><td>{s['fatjets_scored'][m]}</td><td>{s['outside_domain'][m]}</td><td>{s['tagged'][m]}</td>"
            f"<td class='hepinfer-mode-used'>{s['mode_used'][m]}</td><td>{s['inference'][m]['remote_jets']}</td>"
            f"<td>{s['inference'][m]['local_jets']}</td></tr>"
            for m in s["models"]
        )
        table = (
            "<table class='hepinfer-result'><thead><tr><th>model</th><th>jets scored</th><th>outside its domain</th>"
            "<th>tagged</th>"
            "<th>mode used</th><th>remote jets</th><th>local jets (fallback or local)</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )
        where = where_scored_line(s)
        servers = servers_line(s)
        serving = (
            (f"<p class='hepinfer-where-scored'>{html.escape(where)}</p>" if where else "")
            + (f"<p class='hepinfer-servers'>{html.escape(servers)}</p>" if servers else "")
        ) + "".join(f"<p class='hepinfer-serving'>{html.escape(line)}</p>" for line in serving_lines(s.get("serving")))
        check = "".join(
            f"<p class='hepinfer-local-check'>{html.escape(line)}</p>"
            for line in check_lines(s.get("local_check"), s.get("serving"), s["mode_requested"])
        )
        skipped = "".join(
            f"<p class='hepinfer-skipped'>model {html.escape(m)} skipped: {html.escape(why)}</p>"
            for m, why in s.get("skipped_models", {}).items()
        )
        return f"<div class='hepinfer-run'>{head}{table}{serving}{check}{skipped}</div>"


def write_summary(summary: dict, path) -> Path:
    """Write JSON through a temporary file and a rename: the file exists only when complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(summary, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def format_summary(summary: dict) -> str:
    from hepinfer.analysis.cms_compare import correlation_lines
    from hepinfer.analysis.selection import pt_bin_lines

    lines = [
        f"events {summary['events']} in {summary['wall_s']:.2f} s = {summary['events_per_s']:,.1f} events/s "
        f"({summary['workers']} worker(s), {summary['executor']}"
        f"{'/' + summary['cluster'] if summary['cluster'] else ''}; "
        f"setup {summary['setup_s']:.1f} s)",
        f"fat jets selected ({_selection_text(summary['selection'])}): {summary['fatjets_selected']}",
        "| model | weights | domain | jets scored | outside its domain | tagged | mode used |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for m, info in summary["models"].items():
        lines.append(
            f"| {m} | {info['weights'].split()[0]} | {info['domain']} | {summary['fatjets_scored'][m]} | "
            f"{summary['outside_domain'][m]} | {summary['tagged'][m]} | {summary['mode_used'][m]} |"
        )
    lines += pt_bin_lines(summary["by_pt_bin"], summary["models"])
    if summary["mode_requested"] != "local":
        inf = summary["inference"]
        total = {
            k: sum(int(inf[m].get(k, 0)) for m in inf) for k in ("calls", "retried_calls", "retries", "fallback_calls")
        }
        lines.append(
            f"scoring calls: {total['calls']}; retried: {total['retried_calls']} ({total['retries']} retries); "
            f"fell back to local: {total['fallback_calls']}"
        )
    if where := where_scored_line(summary):
        lines.append(where)
    if servers := servers_line(summary):
        lines.append(servers)
    for model, reason in summary.get("skipped_models", {}).items():
        lines.append(f"SKIPPED model {model}: {reason}")
    if summary.get("cms_taggers"):
        lines.append(f"CMS tagger scores in the files (histogram cms_score): {', '.join(summary['cms_taggers'])}")
    lines += correlation_lines(summary.get("rank_correlation", {}))
    for reason in summary.get("skipped_files", {}).values():
        lines.append(f"SKIPPED {reason}")
    lines += serving_lines(summary.get("serving"))
    lines += check_lines(summary.get("local_check"), summary.get("serving"), summary["mode_requested"])
    return "\n".join(lines)


def where_scored_line(summary: dict) -> str | None:
    """Auto mode: how many jets were scored where, and why some were not on the server ("auto: 0
    remote, 567 local: worker 10.77.0.2 cannot reach grpc://127.0.0.1:8001")."""
    if summary["mode_requested"] != "auto":
        return None
    inf = summary["inference"]
    remote, local = (sum(int(c[k]) for c in inf.values()) for k in ("remote_jets", "local_jets"))
    line = f"auto: {remote} remote, {local} local"
    unreachable = (summary.get("server") or {}).get("unreachable") or {}
    if unreachable:
        return line + ": " + "; ".join(f"worker {host} {p['reason']}" for host, p in unreachable.items())
    fallbacks = sum(int(c.get("fallback_calls", 0)) for c in inf.values())
    return line + (f" ({fallbacks} calls fell back to local during the run)" if local and fallbacks else "")


def _selection_text(selection: dict) -> str:
    source = selection["source"]
    return selection["text"] + (f", from {source}" if source != "none" else "")


def serving_lines(serving: dict | None) -> list[str]:
    """One line per model: what the server computes it with."""
    if not serving:
        return []
    out = []
    for model, s in serving.items():
        what = f"{s['engine']} on {s['device']}, {s['precision']}{', compiled' if s['compiled'] else ''}"
        note = (
            " (reduced: scores differ from local inference)"
            if s["reduced"]
            else " (not said by the server: counted as full precision)"
            if s["precision"] == "unknown"
            else ""
        )
        out.append(f"server runs {model}: {what}{note}" + (f" [{s['error']}]" if s.get("error") else ""))
    return out


def check_lines(check: dict | None, serving: dict | None, mode: str) -> list[str]:
    """The ``--check-local`` result: overall, then per model the largest score difference and the tag flips."""
    if check is None:
        return []
    lines = [
        f"local inference, same job: {check['events_per_s']:,.1f} events/s; histograms and cut flow "
        f"{'IDENTICAL' if check['identical'] else 'DIFFERENT'} to the {mode} run; check "
        f"{'PASSED' if check['passed'] else 'FAILED'}"
    ]
    for model, c in check["models"].items():
        where = (serving or {}).get(model)
        tolerance = c.get("tolerance", check["tolerance"])
        bound = "exactly" if tolerance == 0 else f"to {tolerance:g}"
        verdict = (
            "reduced precision or compiled on the server: reported, not checked"
            if c["reduced"]
            else f"agrees {bound}"
            if c["agrees"]
            else f"DIFFERS (needed: {bound})"
        )
        lines.append(
            f"  {model}{' (' + where['precision'] + ')' if where else ''}: largest |score difference| "
            f"{c['max_abs_diff']:.3g}; tag flips at score > {c['cut']:.4g}: {c['flipped']} of {c['jets']} jets "
            f"({100 * c['flip_fraction']:.2f}%) - {verdict}"
        )
    return lines
