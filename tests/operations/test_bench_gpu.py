"""`hepinfer bench gpu`: the paper's table as a command — its options on `hepinfer bench --help`, the
ratios and targets it prints, and its quick size run for real (one CPU core, the torch engine direct
and through the embedded server) on whatever device this machine has.  No test asserts a speed."""

import csv
import re
from types import SimpleNamespace

import pytest

from hepinfer.cli import main
from hepinfer.operations.bench import STUDIES
from hepinfer.operations.bench.gpu import COLUMNS, CPU_NOTE, STUDY, ratios, summary, yes_no

FLAGS = (
    "--models",
    "--batches",
    "--concurrency",
    "--precisions",
    "--served-precision",
    "--compiled",
    "--device",
    "--instances",
    "--in-flight",
    "--memory-budget-gb",
    "--duration",
)


def test_gpu_study_is_registered_and_its_options_are_on_the_command(capsys):
    assert STUDIES["gpu"] is STUDY
    assert set(STUDY.quick) <= set(STUDY.params) and set(STUDY.options) <= set(STUDY.params)
    assert set(STUDY.table) <= set(STUDY.columns)
    with pytest.raises(SystemExit) as done:
        main(["bench", "gpu", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for flag in FLAGS:
        assert flag in out, flag
    assert "gpu: also torch.compile" in out
    assert yes_no("yes") is True and yes_no("OFF") is False
    with pytest.raises(SystemExit) as bad:
        main(["bench", "gpu", "--compiled", "maybe"])
    assert bad.value.code == 2


def _row(model, part, rows_per_s, precision="fp16", compiled=False, instances="", batching="", device="cuda:0"):
    return dict(
        model=model,
        part=part,
        engine="torch" if model != "bdt" else "xgboost",
        device="cpu" if part == "one CPU core" or model == "bdt" else device,
        precision=precision,
        compiled=compiled,
        instances=instances,
        batching=batching,
        rows_per_s=rows_per_s,
        mem_per_row_mb="",
    )


def _table(device):
    return [
        _row("particlenet", "one CPU core", 70.0, precision="fp32"),
        _row("particlenet", "direct", 36_500.0, device=device),
        _row("particlenet", "direct", 111_000.0, compiled=True, device=device),
        _row("particlenet", "served", 24_000.0, instances=1, batching="on", device=device),
        _row("particlenet", "dynamic batching", 16_500.0, instances=1, batching="on", device=device),
        _row("particlenet", "dynamic batching", 3_200.0, instances=1, batching="off", device=device),
        _row("particlenet", "instances", 24_000.0, instances=1, batching="on", device=device),
        _row("particlenet", "instances", 32_000.0, instances=2, batching="on", device=device),
        _row("bdt", "one CPU core", 300_000.0, precision="fp32"),
        _row("bdt", "served", 30_000.0, precision="fp32", instances=1, batching="on"),
    ]


def test_ratios_and_their_targets_on_a_gpu_and_on_cpu():
    """The H100 figures give the paper's ratios; on a GPU each target is met or missed, on CPU the
    same ratios say that the GPU targets do not apply."""
    found = {(m, name): v for m, name, v in ratios(_table("cuda:0"))}
    assert found[("particlenet", "served / one CPU core")] == pytest.approx(32_000 / 70)
    assert found[("particlenet", "compiled / one CPU core")] == pytest.approx(111_000 / 70)
    assert found[("particlenet", "served / direct (fp16)")] == pytest.approx(24_000 / 36_500)
    assert found[("particlenet", "batching on / off")] == pytest.approx(16_500 / 3_200)
    assert found[("particlenet", "2 instances / 1")] == pytest.approx(32_000 / 24_000)
    assert found[("bdt", "remote / local")] == pytest.approx(0.1)

    p = SimpleNamespace(where="cuda:0 (a GPU)", compiled=True, models=("particlenet", "bdt"), skipped=(), precisions=())
    lines = summary(_table("cuda:0"), p)
    assert "particlenet served / one CPU core: 457 (target >= 300, paper ~50: met)" in lines
    assert "particlenet served / direct (fp16): 0.658 (target >= 0.8: MISSED)" in lines
    assert any(line.startswith("bdt remote / local: 0.1 (why: tree models are cheap per row") for line in lines)
    assert not any(CPU_NOTE in line for line in lines)

    p.where = "CPU: torch sees no CUDA device, the GPU targets are not measured"
    lines = summary(_table("cpu"), p)
    assert lines[0].startswith("device: CPU: torch sees no CUDA device")
    assert f"particlenet batching on / off: 5.16 {CPU_NOTE}" in lines
    assert not any("target >=" in line for line in lines)


def _read(path):
    """The CSV rows with the types the study wrote."""
    with open(path) as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["rows_per_s"] = float(r["rows_per_s"])
        r["compiled"] = r["compiled"] == "True"
        r["instances"] = int(r["instances"]) if r["instances"] else ""
    return rows


@pytest.mark.triton
@pytest.mark.build
@pytest.mark.slow
def test_gpu_quick_command(artefacts, tmp_path, capsys):
    """`hepinfer bench gpu --quick`: every part measured, the files written, each ratio positive and
    printed; on a machine without CUDA the study says it ran on CPU."""
    assert main(["bench", "gpu", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert {p.name for p in tmp_path.iterdir()} == {"gpu.csv", "gpu.md", "gpu.png"}
    assert (tmp_path / "gpu.png").read_bytes().startswith(b"\x89PNG")
    with open(tmp_path / "gpu.csv") as f:
        assert next(csv.reader(f)) == list(COLUMNS)
    rows = _read(tmp_path / "gpu.csv")
    assert all(r["rows_per_s"] > 0 and int(r["calls"]) > 0 for r in rows)
    parts = {(r["model"], r["part"]) for r in rows}
    for m in ("particlenet", "bdt"):
        assert {(m, "one CPU core"), (m, "served"), (m, "dynamic batching"), (m, "instances")} <= parts
    assert {r["precision"] for r in rows if r["part"] == "direct"} == {"fp32", "bf16"}
    assert not any(r["model"] == "bdt" and r["part"] == "direct" for r in rows)  # the BDT stays on xgboost
    assert {r["instances"] for r in rows if r["part"] == "instances"} == {1, 2}
    assert {r["batching"] for r in rows if r["part"] == "dynamic batching"} == {"on", "off"}
    assert all(float(r["vs_one_core"]) > 0 for r in rows if r["part"] != "one CPU core")
    assert float(next(r for r in rows if r["model"] == "bdt")["mem_per_row_mb"]) > 0

    found = {(m, name): v for m, name, v in ratios(rows)}
    assert {
        ("particlenet", "served / one CPU core"),
        ("particlenet", "batching on / off"),
        ("particlenet", "2 instances / 1"),
        ("bdt", "remote / local"),
        ("bdt", "batching on / off"),
    } <= set(found)
    assert any(name.startswith("served / direct") for m, name in found if m == "particlenet")
    assert all(v > 0 for v in found.values())
    for (m, name), _ in found.items():
        assert re.search(rf"^{re.escape(f'{m} {name}: ')}[0-9.,]+", out, re.MULTILINE), (m, name)
    assert "(why: tree models are cheap per row" in out
    if next(r for r in rows if r["model"] == "particlenet" and r["part"] == "served")["device"] == "cpu":
        assert CPU_NOTE in out and "device: CPU: torch sees no CUDA device" in out
        assert "the GPU targets are not measured" in (tmp_path / "gpu.md").read_text()
