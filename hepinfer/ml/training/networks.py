"""Training of the networks (torch, build-time extra): seeded, with a progress bar, CPU or GPU.

AdamW with a linear warm-up (first 5 % of steps) and a cosine decay to zero; cross-entropy on the
logits; the epoch with the highest validation AUC is kept (ranking jets is what a tagger is used for,
and the flat-pT weighted loss swings with the few heavily weighted jets); each epoch's losses,
accuracy and validation AUC are returned: the learning curve.  On CUDA, TF32 matrix products are allowed (fp32
storage).

Before the first epoch a few batches are timed on a copy of the network (forward, backward, step)
and the run's length is extrapolated to epochs x batches and logged ("about N min on cpu"); with
``estimate_only`` that is all that runs.
``max_minutes`` bounds the run: the schedule is planned for the epochs that this estimate says fit,
and after the first epoch, measured, they are cut again if fewer fit.
With ``augment``, jet images (4-d inputs) are reflected at random in eta and in phi, batch by batch:
both are symmetries of the top-vs-QCD problem (the images are neither rotated nor flipped when built).
With ``weights`` (the sample's flat-pT weights) the training and validation losses are weighted means.

Checkpoints: with a ``checkpoint`` path, the network, optimiser, schedule, random states and learning
curve are saved there after every epoch; a run started again with the same path (``hepinfer train
--resume``) continues from the last saved epoch with the same schedule, so a long training survives
an interrupted session.  A checkpoint of another model or sample size is refused.  The caller
deletes it once the artefact is written.  ``init_from`` (``hepinfer train --init-from``) starts a new
run from the weights of another run's checkpoint (its best epoch): fine-tuning, with a schedule and
optimiser of its own.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hepinfer.errors import ConfigError
from hepinfer.logs import get_logger
from hepinfer.models.resolved import Model

log = get_logger(__name__)


@dataclass
class TrainSettings:
    epochs: int = 20
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 1
    device: str = "auto"  # auto | cpu | cuda
    val_fraction: float = 0.1
    max_minutes: float | None = None
    progress: bool = True
    augment: bool = False
    estimate_only: bool = False  # time a few batches, print the estimate, train nothing
    resume: bool = False  # continue from the checkpoint when there is one
    init_from: str | None = None  # start from the best weights of this checkpoint (fine-tuning)

    def as_dict(self) -> dict:
        return asdict(self)


def _device(torch, name: str):
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def _auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    from hepinfer.ml.training.roc import auc

    return auc(labels, scores) if 0 < labels.sum() < len(labels) else None


def _flip(torch, xs: list, gen) -> list:
    """Each 4-d input (N, C, eta, phi) reflected at random in eta and in phi, per jet."""
    out = []
    for x in xs:
        if x.dim() == 4:
            for axis in (2, 3):
                pick = torch.rand(len(x), generator=gen, device="cpu") < 0.5
                pick = pick.to(x.device)
                x = torch.where(pick[:, None, None, None], x.flip(axis), x)
        out.append(x)
    return out


def _selection_auc(rec: dict) -> float:
    """The figure an epoch is kept by: its validation AUC (-1 when one class is missing)."""
    return -1.0 if rec.get("val_auc") is None else float(rec["val_auc"])


def _seconds_per_batch(torch, net, batch, loss_fn, settings: TrainSettings, device, runs: int = 3) -> float:
    """Seconds per training step of ``net``, measured on a copy (one warm-up step, then ``runs``)."""
    probe = copy.deepcopy(net).train()
    opt = torch.optim.AdamW(probe.parameters(), lr=settings.lr)
    xs, y = batch

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(probe.logits(*xs), y).mean().backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    step()
    t0 = time.perf_counter()
    for _ in range(runs):
        step()
    return (time.perf_counter() - t0) / runs


def estimate_text(seconds_per_batch: float, batches: int, epochs: int, device: str, max_minutes=None) -> str:
    minutes = seconds_per_batch * batches * epochs / 60
    when = f"about {minutes:.0f} min on {device}" if minutes >= 1 else f"about {minutes * 60:.0f} s on {device}"
    bound = f"; --max-minutes {max_minutes:g} cuts the epochs to fit" if max_minutes and minutes > max_minutes else ""
    return f"{when} ({seconds_per_batch:.3g} s per batch x {batches} batches x {epochs} epochs){bound}"


def _load_checkpoint(torch, path: Path, spec_name: str, n_train: int | None) -> dict:
    """The checkpoint at ``path``; ConfigError unless it is of ``spec_name`` (and, unless None, of a
    run on ``n_train`` training jets)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as err:
        raise ConfigError(f"{path}: not a readable hepinfer training checkpoint ({err})") from None
    if not isinstance(state, dict):
        raise ConfigError(f"{path}: not a hepinfer training checkpoint")
    if state.get("model") != spec_name or (n_train is not None and state.get("train_jets") != n_train):
        raise ConfigError(
            f"{path}: checkpoint of {state.get('model')!r} with {state.get('train_jets')} training jets; this run "
            f"trains {spec_name!r} on {n_train}: delete it or train without --resume"
        )
    return state


def train_network(
    model: Model,
    inputs: dict,
    labels: np.ndarray,
    settings: TrainSettings,
    weights: np.ndarray | None = None,
    checkpoint: str | Path | None = None,
):
    """Train a network on ``inputs`` (numpy, per ModelSpec) and ``labels`` (``weights`` per jet);
    return (net, history).  See the module for checkpoints."""
    import torch

    from hepinfer.models.architectures import network

    spec = model.spec
    torch.manual_seed(settings.seed)
    np.random.seed(settings.seed)
    device = _device(torch, settings.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    net = network(spec)
    if settings.init_from:
        start = _load_checkpoint(torch, Path(settings.init_from), spec.name, None)
        net.load_state_dict(start["best"] or start["net"])
        log.info(f"{spec.name}: starts from the weights of {settings.init_from} (epoch {start['best_epoch']})")
    net = net.to(device)
    n = len(labels)
    rng = np.random.default_rng(settings.seed)
    order = rng.permutation(n)
    n_val = max(1, int(n * settings.val_fraction))
    val_idx, train_idx = order[:n_val], order[n_val:]
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in inputs.items()}
    target = torch.from_numpy(labels.astype(np.int64)).to(device)
    w_all = torch.from_numpy(np.ones(n) if weights is None else np.asarray(weights, np.float64)).float().to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss(reduction="none")
    steps_per_epoch = math.ceil(len(train_idx) / settings.batch_size)
    planned_epochs = settings.epochs

    def lr_at(step: int) -> float:
        total = planned_epochs * steps_per_epoch
        warm = max(1, int(0.05 * total))
        if step < warm:
            return settings.lr * (step + 1) / warm
        return 0.5 * settings.lr * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    def batches(index, shuffle):
        index = rng.permutation(index) if shuffle else index
        for start in range(0, len(index), settings.batch_size):
            sel = torch.from_numpy(index[start : start + settings.batch_size]).to(device)
            yield [tensors[k][sel] for k in spec.input_names], target[sel], w_all[sel]

    first = next(batches(train_idx[: settings.batch_size], False))[:2]
    spb = _seconds_per_batch(torch, net, first, loss_fn, settings, device)
    estimate = estimate_text(spb, steps_per_epoch, planned_epochs, device.type, settings.max_minutes)
    log.info(f"{spec.name}: {len(train_idx)} training jets; {estimate}")
    if settings.estimate_only:
        info = {"estimate": estimate, "seconds_per_batch": spb, "device": str(device), "train_jets": len(train_idx)}
        return None, info
    if settings.max_minutes:  # plan the schedule for the epochs that fit (checked again after the first)
        planned_epochs = max(1, min(planned_epochs, int(settings.max_minutes * 60 / (spb * steps_per_epoch))))
    gen = torch.Generator().manual_seed(settings.seed)
    bar = None
    if settings.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=planned_epochs * steps_per_epoch, desc=f"train {spec.name} ({device.type})", unit="batch")
    history, best, best_loss, best_epoch, step = [], None, float("inf"), 0, 0
    best_auc = float("-inf")
    epoch = 0
    checkpoint = Path(checkpoint) if checkpoint else None
    if checkpoint is not None and settings.resume and checkpoint.exists():
        state = _load_checkpoint(torch, checkpoint, spec.name, len(train_idx))
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        rng.bit_generator.state = state["rng"]
        gen.set_state(state["gen"])
        torch.set_rng_state(state["torch_rng"])
        history, best, best_loss, best_epoch = state["history"], state["best"], state["best_loss"], state["best_epoch"]
        best_auc = _selection_auc(history[best_epoch - 1]) if best_epoch else float("-inf")
        step, epoch, planned_epochs = state["step"], state["epoch"], state["planned_epochs"]
        log.info(f"{spec.name}: resumed from {checkpoint} after epoch {epoch} of {planned_epochs}")
        if bar is not None:
            bar.total = planned_epochs * steps_per_epoch
            bar.update(step)
    while epoch < planned_epochs:
        t0 = time.perf_counter()
        net.train()
        total_loss = 0.0
        total_weight = 0.0
        for xs, y, w in batches(train_idx, shuffle=True):
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            if settings.augment:
                xs = _flip(torch, xs, gen)
            opt.zero_grad(set_to_none=True)
            loss = (loss_fn(net.logits(*xs), y) * w).sum() / w.sum()
            loss.backward()
            opt.step()
            total_loss += float(loss.detach()) * float(w.sum())
            total_weight += float(w.sum())
            step += 1
            if bar is not None:
                bar.update(1)
        net.eval()
        val_loss, val_weight, correct, val_scores = 0.0, 0.0, 0, []
        with torch.no_grad():
            for xs, y, w in batches(val_idx, shuffle=False):
                logits = net.logits(*xs)
                val_loss += float((loss_fn(logits, y) * w).sum())
                val_weight += float(w.sum())
                correct += int((logits.argmax(1) == y).sum())
                val_scores.append((logits[:, 1] - logits[:, 0]).cpu().numpy())
        rec = {
            "epoch": epoch + 1,
            "train_loss": total_loss / total_weight,
            "val_loss": val_loss / val_weight,
            "val_accuracy": correct / len(val_idx),
            "val_auc": _auc(labels[val_idx], np.concatenate(val_scores)),
            "seconds": time.perf_counter() - t0,
        }
        history.append(rec)
        log.info(
            f"{spec.name} epoch {rec['epoch']}/{planned_epochs}: train loss {rec['train_loss']:.4f}, val loss "
            f"{rec['val_loss']:.4f}, val acc {rec['val_accuracy']:.4f} ({rec['seconds']:.1f} s)"
        )
        if _selection_auc(rec) > best_auc:
            best_auc, best_loss, best_epoch = _selection_auc(rec), rec["val_loss"], rec["epoch"]
            best = copy.deepcopy(net.state_dict())
        epoch += 1
        if epoch == 1 and settings.max_minutes:
            fit = int(settings.max_minutes * 60 / max(rec["seconds"], 1e-3))
            if fit < planned_epochs:
                planned_epochs = max(1, fit)
                log.info(f"{spec.name}: {settings.max_minutes} min allow {planned_epochs} epochs; schedule re-planned")
                if bar is not None:
                    bar.total = planned_epochs * steps_per_epoch
        if checkpoint is not None:
            tmp = checkpoint.with_name(checkpoint.name + ".part")
            torch.save(
                {
                    "model": spec.name,
                    "train_jets": len(train_idx),
                    "net": net.state_dict(),
                    "opt": opt.state_dict(),
                    "rng": rng.bit_generator.state,
                    "gen": gen.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "history": history,
                    "best": best,
                    "best_loss": best_loss,
                    "best_epoch": best_epoch,
                    "step": step,
                    "epoch": epoch,
                    "planned_epochs": planned_epochs,
                },
                tmp,
            )
            tmp.replace(checkpoint)
    if bar is not None:
        bar.close()
    net.load_state_dict(best)
    net.eval()
    return net.cpu(), {
        "epochs": history,
        "best_val_loss": best_loss,
        "best_val_auc": best_auc,
        "best_epoch": best_epoch,
        "selected_by": "highest validation AUC",
        "device": str(device),
        "minutes": sum(rec["seconds"] for rec in history) / 60,  # every epoch, resumed runs included
        "estimate": estimate,
        "seconds_per_batch": spb,
        "train_jets": len(train_idx),
        "val_jets": len(val_idx),
    }
