"""Toy jets: correctly shaped, seeded model inputs with realistic structure (variable particle
multiplicity, zero padding, sparse images), without generating events.  The artefact build
calibrates and checks the networks on them, and benchmarks and tests use them where the engines'
cost, not the physics, is measured (``hepinfer demo --toy``).
"""

from __future__ import annotations

import numpy as np

from . import get_spec


def toy_inputs(model: str, n_jets: int, seed: int = 0) -> dict[str, np.ndarray]:
    spec = get_spec(model)
    rng = np.random.default_rng(seed)
    if spec.name == "particlenet":
        n_feat = spec.input("features").shape[0]
        n_max = spec.input("mask").shape[1]
        mult = rng.integers(0, n_max + 20, size=n_jets).clip(max=n_max)  # some jets empty, some full
        mask = (np.arange(n_max)[None, :] < mult[:, None]).astype(np.float32)[:, None, :]
        points = (rng.normal(0.0, 0.25, size=(n_jets, 2, n_max)) * mask).astype(np.float32)
        features = (rng.normal(0.0, 1.0, size=(n_jets, n_feat, n_max)) * mask).astype(np.float32)
        return {"points": points, "features": features, "mask": mask}
    if spec.name == "resnet50":
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
    if spec.name == "bdt":
        (t,) = spec.inputs
        return {t.name: rng.normal(0.0, 1.0, size=(n_jets, t.shape[0])).astype(np.float32)}
    raise NotImplementedError(f"no toy inputs for model {spec.name!r}")  # pragma: no cover
