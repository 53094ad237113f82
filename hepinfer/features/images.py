"""Jet images for ResNet50: constituents binned in (deta, dphi) around the jet axis.

Channels (``JET_IMAGE_CHANNELS``): pT of charged particles / pT_jet, pT of neutral particles /
pT_jet, particle count.  64 x 64 pixels over ``|deta|, |dphi| < 0.8`` (the jet radius); rows are eta,
columns phi.  No rotation or flip: the images stay in the detector frame's orientation.
Particles outside the window are dropped; a jet without constituents is an empty image.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from ..models import JET_IMAGE_CHANNELS, JET_IMAGE_PIXELS
from .common import delta_phi, flat_jets, is_typetracer, require_fields, typetracer_placeholder

HALF_WIDTH = 0.8
JET_FIELDS = ("pt", "eta", "phi")
CONSTITUENT_FIELDS = ("pt", "eta", "phi", "charge")


def jet_images(
    jets, constituents, pixels: int = JET_IMAGE_PIXELS, half_width: float = HALF_WIDTH
) -> dict[str, np.ndarray]:
    """``{"images": (N, 3, pixels, pixels)}`` float32."""
    if is_typetracer(jets, constituents):
        return typetracer_placeholder("resnet50", jets, JET_FIELDS, constituents, CONSTITUENT_FIELDS)
    jets, constituents = flat_jets(jets, constituents)
    require_fields(jets, JET_FIELDS, "jets")
    require_fields(constituents, CONSTITUENT_FIELDS, "constituents")
    n = len(jets)
    counts = ak.to_numpy(ak.num(constituents, axis=1))
    jet_index = np.repeat(np.arange(n), counts)
    deta = ak.to_numpy(ak.flatten(constituents.eta - jets.eta)).astype(np.float64)
    dphi = ak.to_numpy(ak.flatten(delta_phi(constituents.phi, jets.phi))).astype(np.float64)
    pt_frac = ak.to_numpy(ak.flatten(constituents.pt / jets.pt)).astype(np.float64)
    charged = ak.to_numpy(ak.flatten(constituents.charge != 0))
    scale = pixels / (2 * half_width)
    row = np.floor((deta + half_width) * scale).astype(np.int64)
    col = np.floor((dphi + half_width) * scale).astype(np.int64)
    inside = (row >= 0) & (row < pixels) & (col >= 0) & (col < pixels)
    base = (jet_index * len(JET_IMAGE_CHANNELS)) * pixels * pixels + row * pixels + col
    plane = pixels * pixels
    size = n * len(JET_IMAGE_CHANNELS) * plane
    image = np.zeros(size, dtype=np.float64)
    sel = inside & charged
    image += np.bincount(base[sel], weights=pt_frac[sel], minlength=size)
    sel = inside & ~charged
    image += np.bincount(base[sel] + plane, weights=pt_frac[sel], minlength=size)
    image += np.bincount(base[inside] + 2 * plane, minlength=size)
    return {"images": image.reshape(n, len(JET_IMAGE_CHANNELS), pixels, pixels).astype(np.float32)}
