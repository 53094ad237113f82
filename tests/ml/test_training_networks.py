"""Training the networks on jet images: the compact ResNet end to end (tiny), ResNet50 trained into the
artefact cache (its UNTRAINED label goes), image reflections, the compact ResNet's architecture."""

import hashlib
import json

import numpy as np
import pytest

from hepinfer.models import catalogue, get_spec
from hepinfer.models.resolved import resolve

pytestmark = pytest.mark.build  # torch


def test_compact_resnet_is_small_and_reads_resnet50s_images():
    import torch

    from hepinfer.models.architectures import network
    from hepinfer.models.architectures.compact_resnet import BasicBlock

    spec, big = get_spec("resnet"), get_spec("resnet50")
    assert spec.inputs == big.inputs and spec.outputs == big.outputs and spec.classes == big.classes
    net = network(get_spec("resnet")).eval()
    blocks = [m for m in net.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == sum(spec.extra["blocks"])
    params = sum(p.numel() for p in net.parameters())
    assert params * 4 < 5 * 1024 * 1024  # fp32 weights fit the 5 MB a shipped file may have
    x = torch.zeros(3, *spec.input("images").shape)
    x[1, 0, 32, 32] = 1.0
    with torch.no_grad():
        out = net(x)
    assert out.shape == (3, 2) and torch.allclose(out.sum(1), torch.ones(3))


def test_reflections_keep_each_image_or_mirror_it():
    import torch

    from hepinfer.ml.training.networks import _flip

    images = torch.arange(8 * 3 * 4 * 4, dtype=torch.float32).reshape(8, 3, 4, 4)
    other = torch.ones(8, 5)
    flipped, same = _flip(torch, [images, other], torch.Generator().manual_seed(0))
    assert same is other  # only 4-d inputs (images) are reflected
    seen = set()
    for a, b in zip(images, flipped):
        kinds = {
            name
            for name, c in (("id", a), ("eta", a.flip(1)), ("phi", a.flip(2)), ("both", a.flip(1).flip(2)))
            if torch.equal(b, c)
        }
        assert kinds
        seen |= kinds
    assert len(seen) > 1


@pytest.mark.slow
def test_train_compact_resnet_exports_card_and_learning_curve(generated, tmp_path):
    from hepinfer.ml.training import TrainSettings, train
    from hepinfer.runtime.local import LocalRuntime

    files = [str(generated["ttbar"]), str(generated["qcd"])]
    folder = tmp_path / "resnet"
    result = train(
        "resnet",
        files,
        out_dir=folder,
        test=files,
        settings=TrainSettings(epochs=2, batch_size=16, device="cpu", progress=False, augment=True),
        max_jets=48,
    )
    info = result["training"]
    assert info["onnx_vs_torch_max_abs_diff"] < 1e-4 and len(info["epochs"]) == 2
    assert info["estimate"].startswith("about ") and " on cpu (" in info["estimate"]
    curve = json.loads((folder / "learning_curve.json").read_text())
    assert curve["x"] == [1, 2] and curve["series"]["validation loss"] == [e["val_loss"] for e in info["epochs"]]
    assert set(result["working_points"]) == {"top@1%", "top@10%", "top@eff30%", "top@eff50%"}
    card = (folder / "model_card.md").read_text()
    assert "| epoch | train loss | validation loss |" in card and "![learning curve](learning_curve.png)" in card
    rt = LocalRuntime(get_spec("resnet"), artefact=folder / "model.onnx")
    from hepinfer.models.toy import toy_inputs

    assert rt.infer(toy_inputs("resnet", 3))["softmax"].shape == (3, 2)


@pytest.mark.slow
def test_training_resnet50_into_the_cache_removes_the_untrained_label(generated, tmp_path, monkeypatch, capsys):
    """One tiny batch: the estimate is printed before training, the weights land in the artefact cache
    with manifest and model card, and every label stops saying UNTRAINED."""
    from hepinfer.analysis.job.settings import model_choices
    from hepinfer.logs import console
    from hepinfer.ml.training import TrainSettings, train

    monkeypatch.setenv("HEPINFER_HOME", str(tmp_path))
    catalogue.manifest_path(get_spec("resnet50")).parent.mkdir(parents=True)
    catalogue.manifest_path(get_spec("resnet50")).write_text(json.dumps({"weights": "random"}))
    assert "UNTRAINED" in catalogue.weights_note(get_spec("resnet50"))
    assert ("resnet50 (UNTRAINED)", "resnet50") in model_choices()
    console()
    train(
        "resnet50",
        [str(generated["ttbar"]), str(generated["qcd"])],
        settings=TrainSettings(epochs=1, batch_size=32, device="auto", progress=False),
        max_jets=20,  # the fewest train() takes: 18 for training, one batch
        command="hepinfer train resnet50 (test)",
    )
    printed = capsys.readouterr().out
    assert "resnet50: 18 training jets; about " in printed and " x 1 batches x 1 epochs)" in printed
    assert printed.index("about ") < printed.index("resnet50 epoch 1/1")
    assert catalogue.is_trained(get_spec("resnet50")) and catalogue.weights_note(get_spec("resnet50")) == "trained"
    assert ("resnet50", "resnet50") in model_choices()
    folder = catalogue.artefact_path(get_spec("resnet50")).parent
    assert (folder / "model_card.md").exists() and (folder / "learning_curve.png").exists()
    artefact = catalogue.artefact_path(get_spec("resnet50")).read_bytes()
    assert catalogue.manifest(get_spec("resnet50"))["sha256"] == hashlib.sha256(artefact).hexdigest()
    assert np.isfinite(catalogue.manifest(get_spec("resnet50"))["training"]["seconds_per_batch"])


@pytest.mark.slow
def test_estimate_only_times_batches_and_writes_nothing(generated, tmp_path, monkeypatch):
    from hepinfer.errors import ConfigError
    from hepinfer.ml.training import BDTSettings, TrainSettings, train

    monkeypatch.setenv("HEPINFER_HOME", str(tmp_path))
    sample = [str(generated["ttbar"]), str(generated["qcd"])]
    settings = TrainSettings(epochs=3, batch_size=8, device="cpu", progress=False, estimate_only=True)
    result = train("resnet", sample, settings=settings, max_jets=40)
    assert result["estimate"].endswith("x 3 epochs)") and " x 5 batches " in result["estimate"]
    assert result["training"]["seconds_per_batch"] > 0
    resnet = get_spec("resnet")
    assert not catalogue.artefact_path(resnet).exists() and not catalogue.manifest_path(resnet).exists()
    assert not catalogue.artefact_path(resnet).parent.exists()
    with pytest.raises(ConfigError, match="bdt: a time estimate is for the networks"):
        train("bdt", sample, settings=settings, bdt_settings=BDTSettings())


@pytest.mark.slow
def test_training_killed_mid_run_resumes_from_its_checkpoint(generated, tmp_path):
    """A real interruption (SIGKILL of `hepinfer train` once its first checkpoint is written), then
    `--resume`: the learning curve equals that of a run never interrupted, and no checkpoint stays."""
    import subprocess
    import sys
    import time

    files = [str(generated["ttbar"]), str(generated["qcd"])]
    train = [sys.executable, "-m", "hepinfer.cli", "train", "resnet", "--sample", *files, "--epochs", "6"]
    train += ["--batch-size", "16", "--max-jets", "64", "--device", "cpu", "--seed", "3", "--no-progress"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    subprocess.run([*train, "--out", str(whole)], check=True, capture_output=True)
    proc = subprocess.Popen([*train, "--out", str(cut)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (cut / "checkpoint.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    assert (cut / "checkpoint.pt").exists() and not (cut / "model.onnx").exists(), "killed before the export"
    subprocess.run([*train, "--out", str(cut), "--resume"], check=True, capture_output=True)
    epochs = [json.loads((d / "manifest.json").read_text())["training"]["epochs"] for d in (whole, cut)]
    assert len(epochs[0]) == len(epochs[1]) == 6
    for a, b in zip(*epochs):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-6)
    assert not (cut / "checkpoint.pt").exists() and (cut / "model.onnx").exists()


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    import torch

    from hepinfer.errors import ConfigError
    from hepinfer.ml.training.networks import _load_checkpoint

    torch.save({"model": "particlenet", "train_jets": 100}, tmp_path / "checkpoint.pt")
    with pytest.raises(ConfigError, match="checkpoint of 'particlenet' with 100 training jets.*'resnet' on 90"):
        _load_checkpoint(torch, tmp_path / "checkpoint.pt", "resnet", 90)


def test_init_from_starts_from_the_best_weights_of_a_checkpoint(tmp_path):
    import torch

    from hepinfer.ml.training.networks import TrainSettings, train_network
    from hepinfer.models.toy import toy_inputs

    inputs = toy_inputs("resnet", 24, seed=2)
    labels = np.arange(24) % 2
    quick = dict(epochs=1, batch_size=8, device="cpu", progress=False)
    first, _ = train_network(resolve("resnet"), inputs, labels, TrainSettings(**quick), checkpoint=tmp_path / "a.pt")
    # lr 0: the run changes no weight, so what it starts from is what it ends with
    again, info = train_network(
        resolve("resnet"), inputs, labels, TrainSettings(**quick, lr=0.0, init_from=tmp_path / "a.pt")
    )
    best = torch.load(tmp_path / "a.pt", weights_only=False)["best"]
    for name, p in again.named_parameters():
        assert torch.equal(p.detach(), best[name]), name
    fresh, _ = train_network(resolve("resnet"), inputs, labels, TrainSettings(**quick, lr=0.0, seed=5))
    assert not all(torch.equal(a, b) for a, b in zip(fresh.parameters(), again.parameters()))


def test_the_epoch_kept_is_the_one_with_the_highest_validation_auc(tmp_path):
    import torch

    from hepinfer.ml.training.networks import TrainSettings, train_network
    from hepinfer.models.toy import toy_inputs

    inputs = toy_inputs("resnet", 48, seed=3)
    labels = np.arange(48) % 2
    settings = TrainSettings(epochs=4, batch_size=8, device="cpu", progress=False, val_fraction=0.25)
    net, info = train_network(resolve("resnet"), inputs, labels, settings, checkpoint=tmp_path / "c.pt")
    aucs = [e["val_auc"] for e in info["epochs"]]
    assert info["best_epoch"] == 1 + aucs.index(max(aucs)) and info["best_val_auc"] == max(aucs)
    kept = torch.load(tmp_path / "c.pt", weights_only=False)["best"]
    for name, p in net.named_parameters():
        assert torch.equal(p.detach(), kept[name]), name
