"""`hepinfer profile`: the search's decisions, the profile's table, plot and paths, the device
readings, and a real quick profile of the embedded CPU server (and of a running server as a remote
one).  No test asserts a speed."""

from dataclasses import replace

import pytest

from hepinfer.cli import main
from hepinfer.errors import ConfigError
from hepinfer.operations.bench import process_memory
from hepinfer.operations.planning import devices
from hepinfer.operations.planning.profile import ProfileSettings, default_path, plot, search_space, table
from hepinfer.operations.planning.schema import Hardware, Interference, Measurement, Profile, ServingConfig
from hepinfer.operations.planning.search import Search, SearchSpace, best, rank, server_side

START = ServingConfig(model="particlenet", request_rows=64, concurrency=4)
LIMIT = 100.0


class FakeServer:
    """A made-up response surface, so the tests below check the search's decisions, not a server:
    a closed loop of ``c`` requests reaches ``capacity * c / (c + 1)`` rows/s, and its latency follows
    (Little's law); two instances give 1.3x the capacity (four no more), a 1000 µs delay 1.2x, bf16
    2x; configurations matching one of ``broken`` fail."""

    def __init__(self, capacity=1000.0, base_ms=2.0, broken=()):
        self.capacity, self.base_ms, self.broken = capacity, base_ms, broken
        self.calls = []

    def __call__(self, c: ServingConfig) -> Measurement:
        self.calls.append(c)
        if any(all(getattr(c, k) == v for k, v in b.items()) for b in self.broken):
            return Measurement(c, 0.0, 0.0, 0.0, 0, errors=1)
        cap = self.capacity * {1: 1.0, 2: 1.3}.get(c.instances, 1.3)
        cap *= 1.2 if c.max_queue_delay_us == 1000 and c.dynamic_batching else 1.0
        cap *= 2.0 if c.precision == "bf16" else 1.0
        throughput = cap * c.concurrency / (c.concurrency + 1)
        p50 = self.base_ms + c.concurrency * c.request_rows / throughput * 1e3
        return Measurement(c, throughput, p50, 1.5 * p50, memory_bytes=100 * c.instances)


def test_search_doubles_concurrency_while_it_pays_then_varies_each_knob():
    """Tests the search (on a fake measure function), not the server: concurrency doubles while the
    throughput rises by more than 5 % under the latency limit, then instances, batching, precision
    and the batch limit are varied around the best, concurrency again, and the best is the fastest
    under the limit."""
    fake = FakeServer(capacity=10_000.0)
    space = SearchSpace(precisions=("bf16",), max_batch_sizes=(128, 512))
    s = Search(fake, LIMIT, space)
    measured = s.run(START)
    assert len(fake.calls) == len(set(fake.calls)) == len(measured)  # each configuration once
    concurrency = [c.concurrency for c in fake.calls if server_side(c) == server_side(START)]
    assert concurrency == [4, 8, 16]  # 16 is over the p99 limit: doubling stops, 8 stays
    assert {c.instances for c in fake.calls} == {1, 2, 4}  # 4 is tried because 2 won over 1
    assert any(c.max_batch_size == 512 for c in fake.calls) and any(c.max_batch_size == 128 for c in fake.calls)
    chosen = s.best.config
    assert (chosen.instances, chosen.max_queue_delay_us, chosen.precision) == (2, 1000, "bf16")
    assert chosen.concurrency == 16  # the second concurrency pass, on the faster server
    assert s.best == best(measured, LIMIT)
    under = [m for m in measured if m.p99_ms <= LIMIT and not m.errors]
    assert s.best.throughput == max(m.throughput for m in under)


def test_search_halves_concurrency_when_the_start_is_over_the_limit_and_respects_max_steps():
    """Tests the search, not the server: a start over the p99 limit halves the requests in flight;
    no more than max_steps configurations are measured; with none under the limit the best is the
    lowest p99."""
    fake = FakeServer(capacity=200.0)  # 64 rows take 320 ms: nothing fits 100 ms
    s = Search(fake, LIMIT, SearchSpace(max_steps=4))
    measured = s.run(START)
    assert [c.concurrency for c in fake.calls[:3]] == [4, 2, 1]
    assert len(measured) == 4
    assert s.best.p99_ms == min(m.p99_ms for m in measured)
    assert rank(s.best, LIMIT)[0] == 1  # over the limit, ranked by p99


def test_failed_configurations_are_recorded_but_never_best():
    """Tests the search, not the server: a configuration that fails is kept with its errors and
    loses to any that ran."""
    fake = FakeServer(capacity=10_000.0, broken=({"instances": 2},))
    s = Search(fake, LIMIT, SearchSpace(instances=(2, 4), batching=()))
    measured = s.run(START)
    failed = [m for m in measured if m.errors]
    assert [m.config.instances for m in failed] == [2]
    assert s.best.config.instances == 1 and not s.best.errors
    assert not any(c.instances == 4 for c in fake.calls)  # 2 lost, so 4 is not tried


def test_a_start_that_fails_ends_the_search():
    """Tests the search, not the server: when the start configuration fails, nothing else is tried."""
    fake = FakeServer(broken=({"instances": 1},))
    s = Search(fake, LIMIT)
    assert len(s.run(START)) == 1 and s.best.errors == 1


def test_remote_space_varies_only_the_client():
    """Tests the search space of a remote server: request rows and concurrency only."""

    class Remote:
        kind = "remote"

    settings = ProfileSettings(url="grpc://example.org:8001").resolved()
    start = replace(START, instances=3, max_queue_delay_us=500)
    fake = FakeServer(capacity=10_000.0)
    Search(fake, LIMIT, search_space(Remote(), start, settings)).run(start)
    assert {server_side(c) for c in fake.calls} == {server_side(start)}
    assert {c.request_rows for c in fake.calls} == {16, 64, 256}


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="latency_p99_ms"):
        ProfileSettings(latency_p99_ms=0).resolved()
    with pytest.raises(ConfigError, match="engine='torch'"):
        ProfileSettings(device="cuda:0", engine="default").resolved()
    quick = ProfileSettings(quick=True).resolved()
    assert quick.models == ("particlenet", "bdt") and quick.duration_s == 1.0
    assert ProfileSettings(device="cuda:1").resolved().engine == "torch"


def _profile():
    hw = Hardware(kind="cuda", name="NVIDIA H100 MIG 3g.40gb", cores=16, memory_bytes=2**36, slice="3g.40gb", host="n1")
    ms = [
        Measurement(replace(START, concurrency=c), 1000.0 * c, 10.0 * c, 30.0 * c, 5 * 10**9, 0.5, 20.0, 900.0)
        for c in (1, 2, 4, 8)
    ]
    ms.append(Measurement(ServingConfig(model="bdt"), 0.0, 0.0, 0.0, 0, errors=1))
    ms.append(Measurement(ServingConfig(model="bdt", instances=2), 50_000.0, 1.0, 2.0, 10**8))
    inter = Interference(models=("particlenet", "bdt"), alone={"particlenet": 2000.0, "bdt": 50_000.0},
                         together={"particlenet": 1000.0, "bdt": 45_000.0})  # fmt: skip
    return Profile(hardware=hw, measurements=ms, interference=[inter])


def test_table_plot_and_round_trip(tmp_path):
    p = _profile()
    text = table(p, LIMIT)
    assert "| particlenet | default/fp32 i1 b0 d100 r64 c2 | 2,000.0 |" in text  # c4 is over 100 ms
    assert "| bdt | default/fp32 i2 b0 d100 r64 c4 |" in text and "50%" in text
    assert "particlenet 2,000 alone, 1,000 together (slowdown x2.00)" in text
    png = plot(p, tmp_path / "p.png", LIMIT)
    assert png.read_bytes().startswith(b"\x89PNG")
    back = Profile.load(p.save(tmp_path / "p.json"))
    assert back.measurements == p.measurements and back.interference == p.interference


def test_default_path_is_under_hepinfer_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HEPINFER_HOME", str(tmp_path))
    hw = Hardware(kind="cpu", name="x", cores=1, memory_bytes=1, host="node7")
    assert default_path(hw, ProfileSettings(device="cuda:1")) == tmp_path / "profiles" / "node7-cuda1.json"
    remote = ProfileSettings(url="grpc://triton.example.org:8001")
    assert default_path(hw, remote) == tmp_path / "profiles" / "triton.example.org-remote-8001.json"


NVIDIA_SMI_L = """GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-5f1c)
  MIG 3g.40gb     Device  0: (UUID: MIG-aaaa)
  MIG 2g.20gb     Device  1: (UUID: MIG-bbbb)
GPU 1: NVIDIA A100-SXM4-80GB (UUID: GPU-77aa)
"""


def test_mig_slice_and_cuda_numbering(monkeypatch):
    monkeypatch.setattr(devices.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(devices, "_run", lambda cmd, timeout_s=10.0: NVIDIA_SMI_L if cmd[-1] == "-L" else None)
    monkeypatch.setattr(devices, "_nvml", lambda: None)
    slices = devices.mig_slices()
    assert slices["MIG-bbbb"] == ("2g.20gb", "NVIDIA A100-SXM4-80GB") and slices["0"][0] == "3g.40gb"
    assert "1" not in slices
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-bbbb")
    assert devices.device_id("cuda:0") == "MIG-bbbb"
    hw = devices.detect_hardware("cuda:0")
    assert (hw.kind, hw.slice, hw.device_memory_bytes) == ("cuda", "2g.20gb", 20 * 10**9)
    assert hw.name == "NVIDIA A100-SXM4-80GB MIG 2g.20gb"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    assert devices.device_id("cuda:1") == "0"


def test_cpu_hardware_and_resident_memory():
    import os

    hw = devices.detect_hardware("cpu")
    assert hw.kind == "cpu" and hw.cores >= 1 and hw.memory_bytes > 0 and hw.name
    assert process_memory.tree_rss_bytes(os.getpid(), include_root=True) > 0
    assert os.getpid() in process_memory.process_tree(os.getppid())


def test_a_process_tree_and_its_resident_memory():
    """A real tree (this process, a child, a grandchild holding 64 MiB): the tree holds both, its
    memory counts the grandchild's bytes; once the tree has gone it is its root alone, counting 0."""
    import subprocess
    import sys

    grandchild = "import sys; data = b'x' * (64 << 20); print('ready', flush=True); sys.stdin.read()"
    child = (
        "import subprocess, sys; "
        f"p = subprocess.Popen([sys.executable, '-c', {grandchild!r}], stdin=sys.stdin, stdout=subprocess.PIPE); "
        "print(p.pid, p.stdout.readline().decode().strip(), flush=True); p.wait()"
    )
    proc = subprocess.Popen([sys.executable, "-c", child], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        pid, state = proc.stdout.readline().split()
        assert state == "ready"
        assert {proc.pid, int(pid)} <= process_memory.process_tree(proc.pid)
        below = process_memory.tree_rss_bytes(proc.pid)
        assert below >= 64 << 20
        assert process_memory.tree_rss_bytes(proc.pid, include_root=True) > below
    finally:
        proc.stdin.close()  # both read stdin: they end
        proc.wait(timeout=60)
        proc.stdout.close()
    assert process_memory.process_tree(proc.pid) == {proc.pid}
    assert process_memory.rss_bytes([proc.pid, int(pid)]) == 0


# -- real servers ------------------------------------------------------------------------------
@pytest.mark.triton
@pytest.mark.slow
def test_quick_profile_of_the_embedded_cpu_server(tmp_path, capsys):
    """`hepinfer profile --quick` on the embedded CPU server: every model measured, the models
    together, a profile that loads back and its plot, and the table of the best."""
    out = tmp_path / "cpu.json"
    assert main(["profile", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    p = Profile.load(out)
    assert p.models() == ("particlenet", "bdt") and p.hardware.kind == "cpu"
    for model in p.models():
        ms = p.for_model(model)
        assert len(ms) >= 2 and all(m.memory_bytes > 0 for m in ms if not m.errors)
        assert any(m.throughput > 0 and m.compute_us > 0 for m in ms)
    assert len(p.interference) == 1 and set(p.interference[0].together) == {"particlenet", "bdt"}
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    assert "| particlenet |" in printed and "| bdt |" in printed and "served together" in printed


@pytest.mark.triton
@pytest.mark.slow
def test_quick_profile_of_a_running_server_varies_only_the_client(server, tmp_path):
    """A running server profiled as a remote one: its own configuration, read back from it, in every
    measurement; only request rows and concurrency vary."""
    from hepinfer.operations.planning.profile import profile

    settings = ProfileSettings(models=("bdt",), url=server.url, metrics_url=server.metrics_url, quick=True)
    p = profile(settings)
    configs = [m.config for m in p.measurements]
    assert len({server_side(c) for c in configs}) == 1 and configs[0].max_batch_size == 4096
    assert len({c.concurrency for c in configs}) >= 2
    assert all(m.compute_us > 0 for m in p.measurements)
    assert any("only request rows and concurrency" in n for n in p.notes)
