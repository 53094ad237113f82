"""The networks as built: ONNX agrees with torch, and ParticleNet's masking and pooling behave as the
published architecture requires (padding is invisible, particle order does not matter)."""

import json
import pickle

import numpy as np
import pytest

from hepinfer.models import get_spec
from hepinfer.models.catalogue import artefact_path, manifest_path
from hepinfer.models.toy import toy_inputs
from hepinfer.runtime.local import LocalRuntime


@pytest.fixture(scope="module")
def particlenet(artefacts):
    return LocalRuntime(get_spec("particlenet"))


def test_manifests_record_onnx_agreement(artefacts):
    for model in ("particlenet", "resnet50"):
        info = json.loads(manifest_path(get_spec(model)).read_text())
        assert info["onnx_vs_torch_max_abs_diff"] < 1e-4
        assert info["sha256"] and info["bytes"] == artefact_path(get_spec(model)).stat().st_size


def test_particlenet_torch_vs_onnxruntime(artefacts):
    torch = pytest.importorskip("torch")
    from hepinfer.models.architectures.particlenet import ParticleNet

    net = ParticleNet(num_features=15).eval()
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):  # non-trivial BN statistics
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    import tempfile
    import warnings

    x = toy_inputs("particlenet", 16, seed=3)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = f"{tmp}/pn.onnx"
        names = ["points", "features", "mask"]
        torch.onnx.export(
            net,
            tuple(torch.from_numpy(x[n]) for n in names),
            path,
            input_names=names,
            output_names=["softmax"],
            dynamic_axes={n: {0: "b"} for n in names + ["softmax"]},
            opset_version=17,
            dynamo=False,
        )
        runtime = LocalRuntime(get_spec("particlenet"), artefact=path)
        got = runtime.infer(toy_inputs("particlenet", 33, seed=4))["softmax"]
    with torch.no_grad():
        want = net(*[torch.from_numpy(toy_inputs("particlenet", 33, seed=4)[n]) for n in names]).numpy()
    assert np.abs(got - want).max() < 1e-4


def test_padding_is_invisible(particlenet):
    x = toy_inputs("particlenet", 8, seed=5)
    x["mask"][:, :, 40:] = 0  # keep 40 real particles at most
    x["points"] *= x["mask"]
    x["features"] *= x["mask"]
    base = particlenet.infer(x)["softmax"]
    noisy = {k: v.copy() for k, v in x.items()}
    pad = noisy["mask"] == 0
    rng = np.random.default_rng(0)
    noisy["points"] = np.where(pad, rng.normal(size=noisy["points"].shape), noisy["points"]).astype(np.float32)
    noisy["features"] = np.where(pad, rng.normal(size=noisy["features"].shape), noisy["features"]).astype(np.float32)
    assert np.abs(particlenet.infer(noisy)["softmax"] - base).max() < 1e-5


def test_particle_order_does_not_matter(particlenet):
    x = toy_inputs("particlenet", 4, seed=6)
    x["mask"][:] = 1  # all slots real, so any permutation keeps padding at the end
    perm = np.random.default_rng(1).permutation(100)
    shuffled = {k: np.ascontiguousarray(v[:, :, perm]) for k, v in x.items()}
    assert np.abs(particlenet.infer(shuffled)["softmax"] - particlenet.infer(x)["softmax"]).max() < 1e-5


def test_scores_are_probabilities_and_depend_on_input(artefacts, pfnano_events):
    from hepinfer.models.resolved import resolve

    fat = pfnano_events.FatJet
    n = int(sum(len(j) for j in fat))
    for model in ("particlenet", "resnet50", "bdt"):
        resolved = resolve(model)
        rt = LocalRuntime(resolved)
        out = next(iter(rt.infer(resolved.build_inputs(fat, fat.constituents.pf)).values()))
        assert out.shape == (n, 2) and out.dtype == np.float32
        assert np.allclose(out.sum(axis=1), 1.0, atol=1e-5)
        assert out[:, 1].std() > 1e-3, f"{model}: scores do not depend on the input"


def test_empty_batch_and_engine_shared_per_process(artefacts):
    a, b = LocalRuntime(get_spec("bdt")), LocalRuntime(get_spec("bdt"))
    empty = {"input__0": np.zeros((0, 20), np.float32)}
    assert a.infer(empty)["output__0"].shape == (0, 2)
    assert a._engine() is b._engine()
    c = pickle.loads(pickle.dumps(a))
    assert np.array_equal(c.infer(toy_inputs("bdt", 5))["output__0"], a.infer(toy_inputs("bdt", 5))["output__0"])


def test_missing_artefact_says_how_to_build(tmp_path):
    from hepinfer import ArtefactMissing

    rt = LocalRuntime(get_spec("bdt"), artefact=tmp_path / "none.json")
    with pytest.raises(ArtefactMissing, match="hepinfer models build"):
        rt.infer(toy_inputs("bdt", 2))


def test_inward_code_refuses_a_name():
    """Below the edges (the Scorer, the command line, the settings) a model travels resolved: a
    runtime or a catalogue function handed a bare name says so, naming it."""
    from hepinfer.models.catalogue import is_untrained

    with pytest.raises(TypeError, match="got 'bdt': resolve a model's name"):
        LocalRuntime("bdt")
    with pytest.raises(TypeError, match="got 'resnet50'"):
        is_untrained("resnet50")


def test_a_resolved_model_carries_what_hangs_on_it(tmp_path, monkeypatch):
    """resolve() gives one Model per name: its spec, builder and branches, its catalogue entry (the
    shipped card, the weights note) and the working points the card's manifest records; a Model is
    passed through as it is and pickles (it travels to Dask workers inside the job's settings)."""
    from hepinfer import ModelNotFound
    from hepinfer.models.resolved import Model, resolve

    monkeypatch.setenv("HEPINFER_HOME", str(tmp_path))  # nothing built: the shipped files only
    model = resolve("particlenet")
    assert isinstance(model, Model) and model.spec is get_spec("particlenet") and resolve(model) is model
    jets, constituents = model.required_fields
    assert "pt" in jets and constituents and model.reads_constituents
    assert model.card is not None and model.card.read_text().startswith("#")
    assert model.weights_note() == "trained"
    assert model.working_point_cut("top@1%") == model.working_points()["top@1%"]["threshold"]
    untrained = resolve("resnet50")
    assert untrained.card is None and untrained.weights_note().startswith("UNTRAINED")
    assert pickle.loads(pickle.dumps(model)).spec == model.spec
    assert resolve(get_spec("bdt")).required_fields == (resolve("bdt").required_fields)
    assert not resolve("bdt_nanoaod").reads_constituents  # standard NanoAOD: the jet fields alone
    with pytest.raises(ModelNotFound, match="nope"):
        resolve("nope")


@pytest.mark.build  # torch, and the build-time network code
def test_resnet50_architecture():
    torch = pytest.importorskip("torch")
    from hepinfer.models.architectures.resnet import Bottleneck, resnet50

    net = resnet50()
    assert [len(stage) for stage in net.stages] == [3, 4, 6, 3]
    assert all(isinstance(b, Bottleneck) for stage in net.stages for b in stage)
    n_params = sum(p.numel() for p in net.parameters())
    assert 23.4e6 < n_params < 23.6e6  # ResNet50 with a 2-class head
    spec = get_spec("resnet50")
    out = net.eval()(torch.zeros(2, *spec.input("images").shape))
    assert tuple(out.shape) == (2, 2)


SHIPPED = ("bdt", "bdt_nanoaod", "particlenet", "resnet")


@pytest.mark.parametrize("model", SHIPPED)
def test_local_scoring_without_a_prepared_home(model, tmp_path, monkeypatch):
    """A worker whose HEPINFER_HOME is empty scores with the artefact shipped in the package, exactly
    as with the same artefact installed in the cache, and writes nothing into that home."""
    from hepinfer import Scorer
    from hepinfer.models.catalogue import install_shipped, shipped

    x = toy_inputs(model, 64, seed=11)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("HEPINFER_HOME", str(empty))
    scorer = Scorer(model, mode="local")
    got = scorer(x)
    assert scorer.local.artefact == shipped(scorer.spec) and not any(empty.iterdir())
    # auto mode without a server falls back there too
    auto = Scorer(model, mode="auto", url="grpc://127.0.0.1:1", probe_timeout_s=0.5)
    assert auto.score(x)[1] == "local"
    monkeypatch.setenv("HEPINFER_HOME", str(tmp_path / "cache"))
    cached = Scorer(model, mode="local")
    assert install_shipped(cached.spec) == cached.local.artefact  # the cache's own file, once it has one
    want = cached(x)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])


def test_a_damaged_shipped_artefact_is_refused_naming_the_file(tmp_path, monkeypatch):
    import shutil

    from hepinfer import ArtefactMissing, Scorer
    from hepinfer.models import catalogue

    copy = tmp_path / "trained" / "bdt"
    copy.mkdir(parents=True)
    for name in ("xgboost.json", "manifest.json"):
        shutil.copyfile(catalogue.TRAINED_DIR / "bdt" / name, copy / name)
    with open(copy / "xgboost.json", "a") as fh:
        fh.write(" ")  # still a valid booster, no longer the file the manifest names
    monkeypatch.setattr(catalogue, "TRAINED_DIR", tmp_path / "trained")
    monkeypatch.setenv("HEPINFER_HOME", str(tmp_path / "empty"))
    with pytest.raises(ArtefactMissing, match=f"shipped artefact {copy / 'xgboost.json'} has sha256 .*manifest says"):
        Scorer("bdt", mode="local")(toy_inputs("bdt", 2))


def test_a_model_shipped_untrained_still_needs_the_build(tmp_path, monkeypatch):
    from hepinfer import ArtefactMissing, Scorer

    monkeypatch.setenv("HEPINFER_HOME", str(tmp_path))
    with pytest.raises(
        ArtefactMissing, match=r"ships no trained file .*exported from torch.*models build --models resnet50"
    ):
        Scorer("resnet50", mode="local")(toy_inputs("resnet50", 1))
