"""Memory-aware batch limits: the arithmetic of the split, the measurement of memory per row in the
server environment (CPU resident memory here; CUDA where a GPU is), its cache, the sized repository
and a server whose limits came from a budget."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from hepinfer.errors import ConfigError
from hepinfer.models import get_spec
from hepinfer.models.toy import toy_inputs
from hepinfer.serving.memory_budget import (
    MemoryUse,
    batch_limit,
    budget_models,
    last_plans,
    memory_path,
    memory_use,
    plan_batches,
    preferred_sizes,
    size_options,
    sized_options,
)
from hepinfer.serving.repository import RepositoryOptions, read_config, write_repository

MB = 1_000_000
TORCH_CPU = {"engine": "torch", "device": "cpu", "precision": "fp32"}


# -- the arithmetic ---------------------------------------------------------------------------


def test_batch_limit_rounds_down_to_a_power_of_two_and_caps_at_the_spec():
    # 5 MB per row, 100 MB fixed, 1 GB: 180 rows fit -> 128
    assert batch_limit(5 * MB, 100 * MB, 1000 * MB, 1, spec_max=8192) == 128
    # two instances halve the share: (500 - 100) / 5 = 80 rows -> 64
    assert batch_limit(5 * MB, 100 * MB, 1000 * MB, 2, spec_max=8192) == 64
    # room for 180 rows, but the spec allows 100 -> 100 (the cap, not rounded)
    assert batch_limit(5 * MB, 100 * MB, 1000 * MB, 1, spec_max=100) == 100
    assert batch_limit(5 * MB, 100 * MB, 1000 * MB, 1, spec_max=64) == 64
    assert batch_limit(5 * MB, 0, 5 * MB, 1, spec_max=64) == 1  # exactly one row
    assert batch_limit(0, 10, 10, 1, spec_max=4096) == 4096  # nothing per row: the cap


def test_batch_limit_refuses_a_budget_without_room_for_one_row():
    with pytest.raises(ConfigError, match=r"model 'particlenet': one row does not fit the memory budget 104 MB"):
        batch_limit(5 * MB, 100 * MB, 104 * MB, 1, spec_max=256, model="particlenet")
    with pytest.raises(ConfigError, match="particlenet"):
        batch_limit(5 * MB, 100 * MB, 209 * MB, 2, spec_max=256, model="particlenet")  # 104.5 MB an instance
    with pytest.raises(ConfigError, match="one row does not fit"):
        batch_limit(0, 11, 10, 1, spec_max=256)  # the fixed memory alone is too much


def test_preferred_sizes_are_the_largest_power_of_two_and_its_half():
    assert preferred_sizes(256) == (128, 256)
    assert preferred_sizes(100) == (32, 64)
    assert preferred_sizes(3) == (1, 2)
    assert preferred_sizes(1) == (1,)


def test_plan_gives_every_model_the_same_rows_and_hands_back_what_a_cap_leaves():
    net = MemoryUse("particlenet", per_row_bytes=5 * MB, fixed_bytes=50 * MB)
    img = MemoryUse("resnet50", per_row_bytes=3 * MB, fixed_bytes=100 * MB)
    # 1300 MB - 150 MB fixed = 1150 MB for 8 MB a row of both: 143 rows each -> 128 and 64 (resnet50's cap)
    plans = plan_batches([net, img], 1300 * MB, {"particlenet": 256, "resnet50": 64})
    assert [(p.model, p.max_batch_size) for p in plans] == [("particlenet", 128), ("resnet50", 64)]
    # resnet50 keeps 64 rows; particlenet's 191 rows of the rest round down to 128, and the 318 MB
    # left over cannot double that (640 MB more)
    assert [p.share_bytes for p in plans] == [50 * MB + 128 * 5 * MB, 100 * MB + 64 * 3 * MB]
    assert plans[0].preferred_batch_sizes == (64, 128)
    assert sum(p.share_bytes for p in plans) <= 1300 * MB
    # room for exactly the cap: the cap
    assert plan_batches([net], 50 * MB + 256 * 5 * MB, {"particlenet": 256})[0].max_batch_size == 256
    assert "particlenet on cpu: 5 MB per row" in plans[0].describe()
    assert "max_batch_size 128" in plans[0].describe()


def test_plan_splits_over_instances():
    net = MemoryUse("particlenet", per_row_bytes=5 * MB, fixed_bytes=50 * MB)
    bdt = MemoryUse("bdt", per_row_bytes=100, fixed_bytes=60 * MB)
    # 3 instances each: 2000 - 330 MB fixed -> 1670 MB / (3 x 5.0001 MB) = 111 rows each, rounded
    # to 64; the 710 MB the rounding leaves take the BDT to its cap (1.2 MB), not particlenet to 128
    plans = plan_batches([net, bdt], 2000 * MB, {"particlenet": 256, "bdt": 4096}, instances=3, device="cuda:0")
    assert [p.max_batch_size for p in plans] == [64, 4096]
    assert [p.preferred_batch_sizes for p in plans] == [(32, 64), (2048, 4096)]
    # a cap that is not a power of two is reached when there is room
    odd = plan_batches([bdt], 10**9, {"bdt": 3000})[0]
    assert odd.max_batch_size == 3000 and odd.preferred_batch_sizes == (1024, 2048)
    assert all(p.instances == 3 and p.device == "cuda:0" and p.budget_bytes == 2000 * MB for p in plans)
    assert 3 * sum(p.share_bytes for p in plans) <= 2000 * MB


def test_plan_refuses_a_budget_that_does_not_hold_one_row_and_names_the_models():
    net = MemoryUse("particlenet", per_row_bytes=5 * MB, fixed_bytes=50 * MB)
    img = MemoryUse("resnet50", per_row_bytes=3 * MB, fixed_bytes=100 * MB)
    with pytest.raises(ConfigError, match=r"memory budget 157 MB on cuda:0 does not hold one row of every model"):
        plan_batches([net, img], 157 * MB, {"particlenet": 256, "resnet50": 64}, device="cuda:0")
    with pytest.raises(ConfigError, match=r"particlenet 50 MB \+ 5 MB per row, resnet50 100 MB \+ 3 MB per row"):
        plan_batches([net, img], 157 * MB, {"particlenet": 256, "resnet50": 64})
    assert len(plan_batches([net, img], 158 * MB, {"particlenet": 256, "resnet50": 64})) == 2
    with pytest.raises(ConfigError, match="positive"):
        plan_batches([net], 0, {"particlenet": 256})


def test_a_gpu_budget_covers_the_networks_only():
    options = RepositoryOptions(models=("particlenet", "resnet50", "bdt"), engine="torch", device="cuda:0")
    assert tuple(spec.name for spec in budget_models(options)) == ("particlenet", "resnet50")
    on_cpu = RepositoryOptions(models=("particlenet", "bdt"), engine="torch", device="cpu")
    assert budget_models(on_cpu) == (get_spec("particlenet"), get_spec("bdt"))
    with pytest.raises(ConfigError, match="embedded"):
        size_options(RepositoryOptions(flavour="production", models=("bdt",)), 10**9)


# -- measured in the server environment ----------------------------------------------------------


def _options(**kwargs) -> RepositoryOptions:
    return RepositoryOptions(**{"models": ("particlenet",), **TORCH_CPU, **kwargs})


@pytest.mark.slow
@pytest.mark.build
def test_particlenet_memory_per_row_measured_on_cpu_then_cached(artefacts):
    """The torch engine's ParticleNet in fp32 on CPU: megabytes of resident memory per jet (the
    EdgeConv neighbour features), far above its inputs; the second call reads memory.json."""
    options = _options()
    cache = memory_path(get_spec("particlenet"))
    cache.parent.mkdir(parents=True, exist_ok=True)
    stale = {"artefact": "model.pt2", "sha256": "0" * 64, "per_row_bytes": 1, "fixed_bytes": 1}
    other = {"artefact": "model.onnx", "sha256": "1" * 64, "per_row_bytes": 2, "fixed_bytes": 2}
    seeded = {"torch/cpu/fp32/threads=1/" + "0" * 64: stale, "onnx/cpu/fp32/threads=1/" + "1" * 64: other}
    cache.write_text(json.dumps({"model": "particlenet", "entries": seeded}))
    measured = memory_use(get_spec("particlenet"), options, refresh=True)
    io_row = sum(t.row_bytes for t in get_spec("particlenet").inputs + get_spec("particlenet").outputs)
    assert not measured.cached and measured.measure == "peak_resident_memory"
    assert measured.engine == "torch" and measured.device == "cpu" and measured.precision == "fp32"
    assert 1 * MB < measured.per_row_bytes < 50 * MB and measured.per_row_bytes > 50 * io_row
    assert measured.fixed_bytes > 50 * MB  # the process: interpreter, torch, the program
    t0 = time.perf_counter()
    again = memory_use(get_spec("particlenet"), options)
    assert again.cached and time.perf_counter() - t0 < 5
    assert again == measured
    entries = json.loads(memory_path(get_spec("particlenet")).read_text())["entries"]
    # the figures of a replaced model.pt2 are dropped; another artefact's figures are kept
    (key,) = [k for k in entries if k.startswith("torch/cpu/fp32/threads=1/")]
    assert "0" * 64 not in key and entries.pop("onnx/cpu/fp32/threads=1/" + "1" * 64) == other
    cache.write_text(json.dumps({"model": "particlenet", "entries": entries}))  # the seeded entry goes
    assert entries[key]["artefact"] == "model.pt2" and len(entries[key]["sha256"]) == 64
    # the BDT as served (xgboost): a different engine, its own entry in its own file
    bdt = memory_use(get_spec("bdt"), _options(models=("bdt",)))
    assert bdt.engine == "xgboost" and bdt.per_row_bytes > 0
    bdt_entries = json.loads(memory_path(get_spec("bdt")).read_text())["entries"]
    assert any(k.startswith("xgboost/cpu/fp32/") for k in bdt_entries)


@pytest.mark.slow
@pytest.mark.build
def test_sized_options_written_into_the_repository(artefacts, tmp_path):
    options = _options(models=("particlenet", "bdt"))
    net = memory_use(get_spec("particlenet"), options)
    bdt = memory_use(get_spec("bdt"), options)
    budget = net.fixed_bytes + bdt.fixed_bytes + 100 * (net.per_row_bytes + bdt.per_row_bytes)
    sized = sized_options(options, budget)
    assert sized.max_batch_size["particlenet"] == 64  # 100 rows fit, cap 256
    assert sized.preferred_batch_sizes["particlenet"] == (32, 64)
    assert sized.max_batch_size["bdt"] <= get_spec("bdt").max_batch_size
    plans = {p.model: p for p in last_plans()}
    assert plans["particlenet"].per_row_bytes == net.per_row_bytes and plans["particlenet"].budget_bytes == budget
    out = write_repository(tmp_path / "repo", sized)
    config = read_config(out / "particlenet" / "config.pbtxt")
    assert config.max_batch_size == 64 and list(config.dynamic_batching.preferred_batch_size) == [32, 64]
    assert config.parameters["max_rows"].string_value == "64"  # the engine splits larger batches
    bdt_config = read_config(out / "bdt" / "config.pbtxt")
    assert bdt_config.max_batch_size == sized.max_batch_size["bdt"]
    with pytest.raises(ConfigError, match=r"memory budget .* on cpu does not hold one row.*particlenet"):
        sized_options(options, net.fixed_bytes)


@pytest.mark.slow
@pytest.mark.triton
@pytest.mark.build
def test_served_within_a_budget_splits_large_requests(artefacts):
    """A server sized to ~40 ParticleNet jets answers a 100-jet request (split by the client at the
    server's max_batch_size of 32) with the local scores."""
    import hepinfer
    from hepinfer.runtime.local import LocalRuntime
    from hepinfer.runtime.triton import TritonRuntime

    use = memory_use(get_spec("particlenet"), _options())
    budget = use.fixed_bytes + 40 * use.per_row_bytes
    with hepinfer.serve(["particlenet"], memory_budget=budget, **TORCH_CPU) as server:
        runtime = TritonRuntime(get_spec("particlenet"), url=server.url)
        assert runtime.metadata()["max_batch_size"] == 32
        x = toy_inputs("particlenet", 100, seed=8)
        got = runtime.infer(x)
    np.testing.assert_allclose(got["softmax"], LocalRuntime(get_spec("particlenet")).infer(x)["softmax"], atol=1e-5)


@pytest.mark.gpu
@pytest.mark.build
def test_particlenet_memory_per_row_measured_on_cuda(artefacts):
    """On a GPU: allocated CUDA memory per jet, fp16 about half of fp32."""
    fp32 = memory_use(get_spec("particlenet"), _options(device="cuda:0"), refresh=True)
    fp16 = memory_use(get_spec("particlenet"), _options(device="cuda:0", precision="fp16"), refresh=True)
    assert fp32.measure == "cuda_max_memory_allocated" and fp32.device == "cuda:0"
    assert 1 * MB < fp32.per_row_bytes < 50 * MB
    assert 0.3 < fp16.per_row_bytes / fp32.per_row_bytes < 0.7
