"""The built-in models' declarations: ParticleNet, the ResNets, the BDTs (the registry starts from
them, :mod:`hepinfer.models.registry`), and the constants they share: the taggers' validity domain,
the pT bins, the classes along their outputs.

Two ResNets read the same jet images: ``resnet``, the compact one that ships trained (the ResNet
to choose), and ``resnet50``, the heavyweight architecture for throughput studies.
"""

from __future__ import annotations

from hepinfer.features.catalogues import (
    BDT_FEATURES,
    JET_IMAGE_CHANNELS,
    JET_IMAGE_PIXELS,
    NANOAOD_BDT_FEATURES,
    PARTICLENET_FEATURES,
    PARTICLENET_MAX_PARTICLES,
)
from hepinfer.models.spec import Domain, ModelSpec, TensorSpec

JET_IMAGE_MODELS = ("resnet", "resnet50")  # the built-in networks on jet images
# The compact ResNet: basic blocks per stage and the stages' widths (chosen by measurement: docs, training page)
COMPACT_RESNET = {"widths": (32, 64, 128), "blocks": (2, 2, 2), "stem_stride": 2}

P = PARTICLENET_MAX_PARTICLES
_JET_IMAGES = TensorSpec(
    "images",
    "float32",
    (len(JET_IMAGE_CHANNELS), JET_IMAGE_PIXELS, JET_IMAGE_PIXELS),
    "jet image channels: " + ", ".join(JET_IMAGE_CHANNELS),
)
_softmax = (TensorSpec("softmax", "float32", (2,), "P(QCD), P(top)"),)
TOP_VS_QCD = ("qcd", "top")  # the classes along the taggers' outputs
# GeV: the pT bins in which a job's jets (200-250 and up) and the taggers' performance (250 and up) are reported
PT_BIN_EDGES_GEV = (200.0, 250.0, 400.0, 600.0, 1000.0, 2500.0)
# the shipped taggers' validity domain: the fat jets of their training samples (docs: training.md)
TAGGER_DOMAIN = Domain(
    pt=(200.0, 2500.0),
    eta_max=2.4,
    sample="Pythia 8.317 ttbar (hadronic tops) and QCD dijets at 13 TeV in pT-hat bins from 200 GeV to 2.8 TeV, "
    "fat jets anti-kT R=0.8, pT spectrum weighted flat for each class",
    detector="hepinfer's parametrised CMS-like response (hepinfer generate --detector cms)",
    not_for=(
        "no pile-up in training",
        "not calibrated to CMS data or CMS's reconstruction (PUPPI, jet energy corrections)",
        "signal is hadronic top quarks only (no W, Z, H jets)",
    ),
)

BUILTIN_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="particlenet",
        inputs=(
            TensorSpec("points", "float32", (2, P), "(deta, dphi) of the constituents"),
            TensorSpec(
                "features",
                "float32",
                (len(PARTICLENET_FEATURES), P),
                "per-particle features: " + ", ".join(PARTICLENET_FEATURES),
            ),
            TensorSpec("mask", "float32", (1, P), "1 for a real particle, 0 for padding"),
        ),
        outputs=_softmax,
        classes=TOP_VS_QCD,
        domain=TAGGER_DOMAIN,
        max_batch_size=256,
        engine="onnxruntime",
        artefact="model.onnx",
        description="ParticleNet (Qu & Gouskos 2020): 3 EdgeConv blocks, k=16, top vs QCD",
        extra={"features": PARTICLENET_FEATURES, "k": 16},
    ),
    ModelSpec(
        name="resnet50",
        inputs=(_JET_IMAGES,),
        outputs=_softmax,
        classes=TOP_VS_QCD,
        domain=TAGGER_DOMAIN,
        # 64 images x 48 KiB = 3 MiB stays under gRPC's default 4 MiB message limit.
        max_batch_size=64,
        engine="onnxruntime",
        artefact="model.onnx",
        description="ResNet50 (bottleneck blocks [3,4,6,3]) on 3x64x64 jet images, top vs QCD",
        extra={"channels": JET_IMAGE_CHANNELS, "pixels": JET_IMAGE_PIXELS},
    ),
    ModelSpec(
        name="bdt",
        # Triton's FIL backend fixes the tensor names to input__0 / output__0; the embedded
        # flavour uses the same names so one client serves both flavours.
        inputs=(TensorSpec("input__0", "float32", (len(BDT_FEATURES),), "jet variables: " + ", ".join(BDT_FEATURES)),),
        outputs=(TensorSpec("output__0", "float32", (2,), "P(QCD), P(top)"),),
        classes=TOP_VS_QCD,
        domain=TAGGER_DOMAIN,
        max_batch_size=4096,
        engine="xgboost",
        artefact="xgboost.json",
        description="XGBoost binary classifier on 20 jet variables, top vs QCD",
        extra={"features": BDT_FEATURES},
    ),
    ModelSpec(
        name="bdt_nanoaod",
        # standard NanoAOD (no PF candidates): FatJet branches only (hepinfer.features.nanoaod_bdt_builder)
        inputs=(
            TensorSpec(
                "input__0",
                "float32",
                (len(NANOAOD_BDT_FEATURES),),
                "jet variables: " + ", ".join(NANOAOD_BDT_FEATURES),
            ),
        ),
        outputs=(TensorSpec("output__0", "float32", (2,), "P(QCD), P(top)"),),
        classes=TOP_VS_QCD,
        domain=TAGGER_DOMAIN,
        max_batch_size=4096,
        engine="xgboost",
        artefact="xgboost.json",
        description="XGBoost binary classifier on 9 FatJet variables of standard NanoAOD, top vs QCD",
        extra={"features": NANOAOD_BDT_FEATURES},
    ),
    ModelSpec(
        name="resnet",
        inputs=(_JET_IMAGES,),
        outputs=_softmax,
        classes=TOP_VS_QCD,
        domain=TAGGER_DOMAIN,
        max_batch_size=64,  # as resnet50: 64 images fit one gRPC message
        engine="onnxruntime",
        artefact="model.onnx",
        description=(
            f"Compact ResNet (basic blocks {list(COMPACT_RESNET['blocks'])}, widths "
            f"{'-'.join(map(str, COMPACT_RESNET['widths']))}) on 3x64x64 jet images, top vs QCD"
        ),
        extra={"channels": JET_IMAGE_CHANNELS, "pixels": JET_IMAGE_PIXELS, **COMPACT_RESNET},
        builder="image",  # resnet50's jet images
        builder_params={"channels": JET_IMAGE_CHANNELS, "pixels": JET_IMAGE_PIXELS},
    ),
)
