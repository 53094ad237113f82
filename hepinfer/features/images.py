"""The ``image`` builder: constituents binned in (deta, dphi) around the jet axis.

``pixels`` x ``pixels`` over ``|deta|, |dphi| < half_width``; rows are eta, columns phi; one plane
per channel of :data:`IMAGE_CHANNELS`, in the order given.  No rotation or flip: the images stay in
the detector frame's orientation.  Particles outside the window are dropped; a jet without
constituents is an empty image.  Output: ``{images_name: (N, channels, pixels, pixels)}`` float32.

ResNet50's jet images (``resnet50``) are ``image(channels=JET_IMAGE_CHANNELS, pixels=64,
half_width=0.8)``: pT of charged particles / pT_jet, pT of neutral particles / pT_jet, particle count.
"""

from __future__ import annotations

from typing import NamedTuple

import awkward as ak
import numpy as np

from ..models import JET_IMAGE_CHANNELS, JET_IMAGE_PIXELS
from . import base
from .common import delta_phi, flat_jets, is_typetracer, require_fields

HALF_WIDTH = 0.8


class Channel(NamedTuple):
    description: str
    weighted: bool  # pixel value: sum of pT / pT_jet (True) or a particle count (False)
    charge: bool | None  # charged only (True), neutral only (False), all (None)


IMAGE_CHANNELS: dict[str, Channel] = {
    "pt_charged": Channel("sum of pT / pT_jet of the charged particles", True, True),
    "pt_neutral": Channel("sum of pT / pT_jet of the neutral particles", True, False),
    "multiplicity": Channel("number of particles", False, None),
    "pt": Channel("sum of pT / pT_jet of all particles", True, None),
    "multiplicity_charged": Channel("number of charged particles", False, True),
    "multiplicity_neutral": Channel("number of neutral particles", False, False),
}
DEFAULTS = dict(channels=JET_IMAGE_CHANNELS, pixels=JET_IMAGE_PIXELS, half_width=HALF_WIDTH, images_name="images")


def check_params(**params) -> dict:
    p = {**DEFAULTS, **params}
    return dict(
        channels=base.names_from("channels", p["channels"], IMAGE_CHANNELS, "image channel"),
        pixels=base.positive_int("pixels", p["pixels"]),
        half_width=base.positive_number("half_width", p["half_width"]),
        **base.tensor_names({"images_name": p["images_name"]}),
    )


def required_fields(**params) -> tuple[tuple[str, ...], tuple[str, ...]]:
    channels = [IMAGE_CHANNELS[c] for c in check_params(**params)["channels"]]
    weighted = any(c.weighted for c in channels)
    charge = any(c.charge is not None for c in channels)
    jet = ("pt",) * weighted + ("eta", "phi")
    cons = ("pt",) * weighted + ("eta", "phi") + ("charge",) * charge
    return jet, cons


def output_shapes(**params) -> dict[str, tuple[int, ...]]:
    p = check_params(**params)
    return {p["images_name"]: (len(p["channels"]), p["pixels"], p["pixels"])}


def image(
    jets,
    constituents,
    channels=JET_IMAGE_CHANNELS,
    pixels: int = JET_IMAGE_PIXELS,
    half_width: float = HALF_WIDTH,
    images_name: str = "images",
) -> dict[str, np.ndarray]:
    """``{images_name: (N, len(channels), pixels, pixels)}`` float32, one image per jet in event order."""
    p = check_params(channels=channels, pixels=pixels, half_width=half_width, images_name=images_name)
    jet_fields, cons_fields = required_fields(**p)
    if is_typetracer(jets, constituents):
        base.touch(jets, jet_fields, constituents, cons_fields)
        return base.placeholder(output_shapes(**p))
    jets, constituents = flat_jets(jets, constituents)
    require_fields(jets, jet_fields, "jets")
    require_fields(constituents, cons_fields, "constituents")
    channels, pixels, half_width = p["channels"], p["pixels"], p["half_width"]
    n = len(jets)
    counts = ak.to_numpy(ak.num(constituents, axis=1))
    jet_index = np.repeat(np.arange(n), counts)
    deta = ak.to_numpy(ak.flatten(constituents.eta - jets.eta)).astype(np.float64)
    dphi = ak.to_numpy(ak.flatten(delta_phi(constituents.phi, jets.phi))).astype(np.float64)
    scale = pixels / (2 * half_width)
    row = np.floor((deta + half_width) * scale).astype(np.int64)
    col = np.floor((dphi + half_width) * scale).astype(np.int64)
    inside = (row >= 0) & (row < pixels) & (col >= 0) & (col < pixels)
    plane = pixels * pixels
    pixel = jet_index * plane + row * pixels + col
    pt_frac = charged = None
    img = np.zeros((n, len(channels), pixels, pixels), dtype=np.float64)
    for k, name in enumerate(channels):
        channel = IMAGE_CHANNELS[name]
        sel = inside
        if channel.charge is not None:
            if charged is None:
                charged = ak.to_numpy(ak.flatten(constituents.charge != 0))
            sel = inside & (charged if channel.charge else ~charged)
        weights = None
        if channel.weighted:
            if pt_frac is None:
                pt_frac = ak.to_numpy(ak.flatten(constituents.pt / jets.pt)).astype(np.float64)
            weights = pt_frac[sel]
        img[:, k] = np.bincount(pixel[sel], weights=weights, minlength=n * plane).reshape(n, pixels, pixels)
    return {p["images_name"]: img.astype(np.float32)}


image.check_params = check_params
image.required_fields = required_fields
image.touched_fields = required_fields
image.output_shapes = output_shapes

PARAMS = dict(channels=JET_IMAGE_CHANNELS)


def jet_images(
    jets, constituents, pixels: int = JET_IMAGE_PIXELS, half_width: float = HALF_WIDTH
) -> dict[str, np.ndarray]:
    """``{"images": (N, 3, pixels, pixels)}`` float32 (``image`` with ResNet50's channels)."""
    return image(jets, constituents, pixels=pixels, half_width=half_width, **PARAMS)


base.instance(jet_images, image, **PARAMS)
JET_FIELDS, CONSTITUENT_FIELDS = jet_images.required_fields()
