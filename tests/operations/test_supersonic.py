"""Values for SuperSONIC's Helm chart (``hepinfer fleet export --supersonic``), checked against the
chart's own files for release 0.3.1: the copy shipped in the package and, where this checkout has
it, the one in ../shared/supersonic-0.3.1.  Each export is merged over the chart's values.yaml as
Helm merges values and validated with jsonschema against the chart's values.schema.json, here in
the test as well as by hepinfer itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hepinfer.cli import main
from hepinfer.errors import ConfigError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "supersonic-0.3.1"
SHIPPED = Path(__file__).resolve().parents[2] / "hepinfer" / "operations" / "fleet" / "supersonic"
FILES = ("Chart.yaml", "values.yaml", "values.schema.json", "LICENSE")


def _chart_dir(which: str) -> Path:
    if which == "shared" and not SHARED.is_dir():
        pytest.skip(f"the chart's files are not in {SHARED} (the shared folder of this checkout)")
    return SHARED if which == "shared" else SHIPPED


def _schema_errors(values: dict, directory: Path, merged: bool = True) -> list[str]:
    """jsonschema's complaints about ``values`` merged over the chart's defaults in ``directory``
    (``merged=False``: about ``values`` alone)."""
    import jsonschema
    import yaml

    from hepinfer.operations.fleet.chart import merge

    schema = json.loads((directory / "values.schema.json").read_text())
    defaults = yaml.safe_load((directory / "values.yaml").read_text())
    errors = jsonschema.Draft7Validator(schema).iter_errors(merge(defaults, values) if merged else values)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


def test_the_shipped_chart_files_are_release_0_3_1():
    import yaml

    from hepinfer.operations.fleet.chart import load_chart

    chart = load_chart()
    assert (chart.name, chart.version) == ("supersonic", "0.3.1")
    assert yaml.safe_load((SHIPPED / "Chart.yaml").read_text())["version"] == "0.3.1"
    assert "Apache License" in (SHIPPED / "LICENSE").read_text()
    if SHARED.is_dir():  # copied unchanged
        for name in FILES:
            assert (SHIPPED / name).read_bytes() == (SHARED / name).read_bytes(), name


def test_helm_merge_maps_key_by_key_lists_and_scalars_replaced():
    from hepinfer.operations.fleet.chart import merge

    defaults = {"a": {"b": 1, "c": [1, 2], "d": {"e": "x"}}, "f": 2}
    merged = merge(defaults, {"a": {"c": [3], "d": {"g": True}}, "f": None, "h": 0})
    assert merged == {"a": {"b": 1, "c": [3], "d": {"e": "x", "g": True}}, "h": 0}
    assert defaults == {"a": {"b": 1, "c": [1, 2], "d": {"e": "x"}}, "f": 2}  # left as it was


@pytest.mark.parametrize("which", ["shipped", "shared"])
def test_an_export_passes_the_chart_schema_and_keeps_the_fleet_settings(which, tmp_path, capsys):
    import yaml

    from hepinfer.operations.fleet.chart import load_chart, unknown_keys

    directory = _chart_dir(which)
    out = tmp_path / "values.yaml"
    argv = ["fleet", "export", "--supersonic", str(out), "--models", "bdt,particlenet", "--replicas", "2"]
    argv += ["--min", "2", "--max", "5", "--threshold", "3", "--poll", "10", "--step", "2", "--gpu"]
    assert main([*argv, "--storage", "nfs:10.1.2.3:/export/models", "--set", "envoy.replicas=2"]) == 0
    printed = capsys.readouterr().out
    assert "helm install hepinfer supersonic/supersonic --version 0.3.1" in printed
    text = out.read_text()
    assert "the supersonic chart 0.3.1" in text and "--version 0.3.1" in text
    assert "note: no admission guard" in text and "--poll 10" in text  # what 0.3.1 cannot hold
    values = yaml.safe_load(text)
    assert _schema_errors(values, directory) == []
    assert len(_schema_errors(values, directory, merged=False)) > 10  # alone it misses what the defaults supply
    assert unknown_keys(values, load_chart(directory)) == []
    # the fleet's settings, in chart 0.3.1's values
    assert values["serverLoadThreshold"] == 3
    query = values["serverLoadMetric"]
    assert 'nv_inference_request_duration_us{release=~"hepinfer"}[60s]' in query and "job=" not in query
    assert "clamp_min" in query and "count by (instance)" in query  # per replica: what Envoy and KEDA compare
    keda = values["keda"]
    assert (keda["enabled"], keda["minReplicaCount"], keda["maxReplicaCount"]) == (True, 2, 5)
    assert keda["scaleUp"] == {"stabilizationWindowSeconds": 120, "periodSeconds": 10, "stepsize": 2}
    assert keda["scaleDown"]["stepsize"] == 2 and keda["scaleDown"]["periodSeconds"] == 10
    assert values["envoy"]["replicas"] == 2 and values["envoy"]["rate_limiter"]["prometheus_based"]["enabled"] is False
    assert values["triton"]["resources"] == {"limits": {"nvidia.com/gpu": 1}, "requests": {"nvidia.com/gpu": 1}}
    repo = values["triton"]["modelRepository"]
    assert repo == {
        "enabled": True,
        "mountPath": "/models",
        "storageType": "nfs",
        "nfs": {"server": "10.1.2.3", "path": "/export/models"},
    }
    args = values["triton"]["args"][0]
    assert "--model-repository=/models" in args and "--load-model=bdt" in args and "--load-model=particlenet" in args
    for other_release in ("serverAdmissionThreshold", "serverLoadRateInterval"):
        assert other_release not in values
    assert "metricType" not in keda and "pollingInterval" not in keda


@pytest.mark.parametrize("which", ["shipped", "shared"])
def test_queue_time_with_the_guard_at_the_threshold_is_the_charts_limiter(which):
    from hepinfer.operations.fleet import AutoscalerSettings
    from hepinfer.operations.fleet.chart import load_chart
    from hepinfer.operations.fleet.export import notes, supersonic_values

    chart = load_chart(_chart_dir(which))
    a = AutoscalerSettings(metric="queue_time", admission_ratio=1.0, scale=False)
    values = supersonic_values(["bdt"], autoscaler=a, name="tagger", chart=chart)
    assert _schema_errors(values, Path(chart.source)) == [] and notes(a) == []
    assert values["serverLoadThreshold"] == 100
    query = values["serverLoadMetric"]
    assert 'nv_inference_queue_duration_us{release=~"tagger"}[15s]' in query and "job=" not in query
    assert values["envoy"]["rate_limiter"]["prometheus_based"]["enabled"] is True
    assert values["keda"]["enabled"] is False
    unguarded = supersonic_values(["bdt"], autoscaler=AutoscalerSettings(admission_ratio=None), chart=chart)
    assert unguarded["envoy"]["rate_limiter"]["prometheus_based"]["enabled"] is False
    assert notes(AutoscalerSettings(admission_ratio=None)) == []


@pytest.mark.parametrize("which", ["shipped", "shared"])
def test_invalid_values_are_refused_naming_the_key(which, tmp_path, capsys):
    import yaml

    from hepinfer.operations.fleet.chart import load_chart
    from hepinfer.operations.fleet.export import supersonic_values

    chart = load_chart(_chart_dir(which))
    with pytest.raises(ConfigError, match=r"keda\.minReplicaCount: 'two' is not of type 'integer'"):
        supersonic_values(["bdt"], extra={"keda.minReplicaCount": "two"}, chart=chart)
    with pytest.raises(ConfigError, match=r"envoy\.resources\.limits\.cpu: '8' is not of type 'number'"):
        supersonic_values(["bdt"], extra={"envoy.resources.limits.cpu": "8"}, chart=chart)
    with pytest.raises(ConfigError, match="serverAdmissionThreshold is not a value of the supersonic chart 0.3.1"):
        supersonic_values(["bdt"], extra={"serverAdmissionThreshold": 3}, chart=chart)  # a later release's key
    with pytest.raises(ConfigError, match=r"triton\.replica is not a value .* known under triton: .*replicas"):
        supersonic_values(["bdt"], extra={"triton.replica": 2}, chart=chart)
    # the same refusal from jsonschema itself, on a written file with a string for an integer
    values = supersonic_values(["bdt"], chart=chart)
    assert _schema_errors({**values, "serverLoadThreshold": "2"}, Path(chart.source)) == [
        "serverLoadThreshold: '2' is not of type 'integer'"
    ]
    out = tmp_path / "values.yaml"
    base = ["fleet", "export", "--supersonic", str(out), "--models", "bdt"]
    assert main([*base, "--set", "triton.replicas=two"]) == 2
    assert "triton.replicas: 'two' is not of type 'integer'" in capsys.readouterr().err and not out.exists()
    assert main([*base, "--set", "ingress.enabled=true"]) == 2
    assert "ingress.enabled: ingress is not a value" in capsys.readouterr().err and not out.exists()
    assert main([*base, "--threshold", "1.5"]) == 2  # the schema's serverLoadThreshold is an integer
    assert "whole number" in capsys.readouterr().err and not out.exists()
    for storage in ("s3:bucket", "cvmfs-hostPath"):  # cvmfs-hostPath: a later release's name for cvmfs
        with pytest.raises(ConfigError, match="--storage must be one of .*cvmfs"):
            supersonic_values(["bdt"], storage=storage, chart=chart)
    assert yaml.safe_load(yaml.safe_dump(values)) == values


def test_export_from_a_plan_takes_its_models_and_gpu(tmp_path):
    import yaml

    plan = {
        "flavour": "production",
        "devices": [{"name": "gpu0", "kind": "cuda"}, {"name": "cpu0", "kind": "cpu"}],
        "placements": [{"model": "particlenet", "device": "gpu0"}, {"model": "bdt", "device": "cpu0"}],
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    out = tmp_path / "values.yaml"
    assert main(["fleet", "export", "--supersonic", str(out), "--plan", str(tmp_path / "plan.json")]) == 0
    values = yaml.safe_load(out.read_text())
    assert values["triton"]["resources"]["limits"] == {"nvidia.com/gpu": 1}
    assert _schema_errors(values, SHIPPED) == []
    args = values["triton"]["args"][0]
    assert args.count("--load-model=") == 2 and "--load-model=particlenet" in args
