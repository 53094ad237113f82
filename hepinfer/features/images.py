"""The ``image`` builder: constituents binned in (deta, dphi) around the jet axis.

``pixels`` x ``pixels`` over ``|deta|, |dphi| < half_width``; rows are eta, columns phi; one plane
per channel of :data:`IMAGE_CHANNELS`, in the order given.  No rotation or flip: the images stay in
the detector frame's orientation.  Particles outside the window are dropped; a jet without
constituents is an empty image.  Output: ``{images_name: (N, channels, pixels, pixels)}`` float32.

ResNet50's jet images (``resnet50``) are ``image(channels=JET_IMAGE_CHANNELS, pixels=64,
half_width=0.8)``: pT of charged particles / pT_jet, pT of neutral particles / pT_jet, particle count.

A pixel's value is the sum, in float64 and in the particles' storage order, of its particles'
weights, rounded once to float32 (as ``np.bincount`` into a float64 image would give).  Only the
occupied pixels are computed and written into the zeroed float32 images (:func:`_fill`): a dense
float64 image per jet (98 kB for 3 x 64 x 64) costs more memory traffic than all the particles
together, and zeroing the float32 output is most of what this builder costs.
"""

from __future__ import annotations

from typing import NamedTuple

import awkward as ak
import numpy as np

from hepinfer.features import base
from hepinfer.features.catalogues import JET_IMAGE_CHANNELS, JET_IMAGE_HALF_WIDTH, JET_IMAGE_PIXELS
from hepinfer.features.common import delta_phi, flat_jets, require_fields
from hepinfer.features.flat import Unsupported, chunk

HALF_WIDTH = JET_IMAGE_HALF_WIDTH


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
    flat = flat_jets(jets, constituents)
    require_fields(flat[0], jet_fields, "jets")
    require_fields(flat[1], cons_fields, "constituents")
    try:
        return {p["images_name"]: _images(chunk(jets, constituents, flat), p)}
    except Unsupported:  # None among the values, a field that is not numbers: the awkward path
        return image_on_awkward(*flat, **p)


_BLOCK_BYTES = 1 << 23  # the images of one block of jets stay in cache while they are filled


def _images(ch, p: dict) -> np.ndarray:
    """The images, filled a block of jets at a time (a few MB of images): every pass over a
    block's particles then finds its pixels in cache."""
    n, pixels = ch.n_jets, p["pixels"]
    img = np.zeros((n, len(p["channels"]), pixels, pixels), dtype=np.float32)
    block = max(1, _BLOCK_BYTES // (4 * len(p["channels"]) * pixels * pixels))
    for first in range(0, n, block):
        last = min(first + block, n)
        _block(ch, p, img[first:last].reshape(-1), ch.offsets[first], ch.offsets[last], first)
    return img


def _block(ch, p: dict, out, lo, hi, first_jet) -> None:
    """Fill ``out`` (the flat images of the jets from ``first_jet`` on) with particles lo:hi."""
    channels, pixels, half_width = p["channels"], p["pixels"], p["half_width"]
    n_channels, plane = len(channels), pixels * pixels
    scale = pixels / (2 * half_width)
    row = np.floor((ch.deta[lo:hi].astype(np.float64) + half_width) * scale).astype(np.int64)
    col = np.floor((ch.dphi[lo:hi].astype(np.float64) + half_width) * scale).astype(np.int64)
    inside = (row >= 0) & (row < pixels) & (col >= 0) & (col < pixels)
    target = ((ch.jet_index[lo:hi] - first_jet) * n_channels) * plane + row * pixels + col  # channel 0
    pt_frac = charged = None
    targets, weights = [], []
    for k, name in enumerate(channels):
        channel = IMAGE_CHANNELS[name]
        sel = inside
        if channel.charge is not None:
            if charged is None:
                charged = ch.charged[lo:hi]
            sel = inside & (charged if channel.charge else ~charged)
        idx = np.flatnonzero(sel)
        targets.append(target[idx] + k * plane)
        if channel.weighted:
            if pt_frac is None:
                pt_frac = (ch.field("pt")[lo:hi] / ch.jet_field_at_particles("pt")[lo:hi]).astype(np.float64)
            weights.append(pt_frac[idx])
        else:
            weights.append(np.ones(len(idx)))
    _fill(out, np.concatenate(targets), np.concatenate(weights))


def _fill(out, at, weight) -> None:
    """``out[at[i]] = float32(0.0 + weight[i] + ...)``: every pixel the float64 sum of its weights,
    added in their order (``np.bincount``'s sum), rounded once.  Which entries share a pixel is
    found without sorting: each entry writes its number into ``out`` (still zero, seen as int32)
    and reads back the number that stayed; entries reading another's number share a pixel."""
    if len(at) >= 2**31:  # entry numbers are written into the float32 image as int32
        raise Unsupported("more than 2**31 pixel entries in one block of jets")
    ids = np.arange(len(at), dtype=np.int32)
    tags = out.view(np.int32)
    tags[at] = ids
    stayed = tags[at]
    lost = np.flatnonzero(stayed != ids)
    out[at] = weight + 0.0  # a pixel of one entry: 0.0 + weight (-0.0 becomes 0.0, as in a sum)
    if len(lost):
        shared = np.zeros(len(at), dtype=bool)
        shared[lost] = True
        shared[stayed[lost]] = True
        many = np.flatnonzero(shared)  # in order: each pixel's entries keep their order
        sums = np.bincount(stayed[many], weights=weight[many])
        out[at[many]] = sums[stayed[many]]


def image_on_awkward(jets, constituents, **p) -> dict[str, np.ndarray]:
    """The images from awkward arrays, for inputs the flat path does not take (``jets`` /
    ``constituents`` without the event axis; ``p``: the checked parameters): a dense float64 image
    per channel filled with ``np.bincount``."""
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
