"""Toy jets: correctly shaped, seeded model inputs with realistic structure (variable particle
multiplicity, zero padding, sparse images), without generating events.  The artefact build
calibrates and checks the networks on them, and benchmarks and tests use them where the engines'
cost, not the physics, is measured (``hepinfer demo --toy``).
"""

from __future__ import annotations

import numpy as np

from hepinfer.models import JET_IMAGE_MODELS
from hepinfer.models.resolved import resolve


def toy_inputs(model, n_jets: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``n_jets`` rows of inputs of ``model``: a name (resolved here: ``toy_inputs("bdt", 100)``), a
    ModelSpec or a resolved Model."""
    spec = resolve(model).spec
    rng = np.random.default_rng(seed)
    if spec.name == "particlenet":
        n_feat = spec.input("features").shape[0]
        n_max = spec.input("mask").shape[1]
        mult = rng.integers(0, n_max + 20, size=n_jets).clip(max=n_max)  # some jets empty, some full
        mask = (np.arange(n_max)[None, :] < mult[:, None]).astype(np.float32)[:, None, :]
        points = (rng.normal(0.0, 0.25, size=(n_jets, 2, n_max)) * mask).astype(np.float32)
        features = (rng.normal(0.0, 1.0, size=(n_jets, n_feat, n_max)) * mask).astype(np.float32)
        return {"points": points, "features": features, "mask": mask}
    if spec.name in JET_IMAGE_MODELS:
        c, h, w = spec.input("images").shape
        images = np.zeros((n_jets, c, h, w), dtype=np.float32)
        n_part = rng.integers(1, 100, size=n_jets)
        for i, n in enumerate(n_part):  # particles around the centre, as hepinfer.features.jet_images bins them
            ys = np.clip(rng.normal(h / 2, h / 8, n).astype(int), 0, h - 1)
            xs = np.clip(rng.normal(w / 2, w / 8, n).astype(int), 0, w - 1)
            frac = rng.dirichlet(np.full(n, 0.3)).astype(np.float32)  # pT fractions summing to 1
            charged = rng.random(n) < 0.6
            np.add.at(images[i, 0], (ys[charged], xs[charged]), frac[charged])
            np.add.at(images[i, 1], (ys[~charged], xs[~charged]), frac[~charged])
            np.add.at(images[i, 2], (ys, xs), 1.0)
        return {"images": images}
    return generic_inputs(spec, n_jets, rng)


def generic_inputs(spec, n_jets: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Standard-normal values (integers in [0, 10) for integer tensors, random booleans) of each
    input's dtype and per-row shape, a variable dimension (-1) taken as 1: what any declared model
    (the BDTs, a user's model) accepts, with no structure beyond the shapes."""
    out = {}
    for t in spec.inputs:
        shape = (n_jets, *[max(d, 1) for d in t.shape])
        kind = t.numpy_dtype.kind
        if kind == "b":
            out[t.name] = rng.random(shape) < 0.5
        elif kind in "iu":
            out[t.name] = rng.integers(0, 10, size=shape).astype(t.numpy_dtype)
        else:
            out[t.name] = rng.normal(0.0, 1.0, size=shape).astype(t.numpy_dtype)
    return out
