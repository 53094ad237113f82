"""The artefact catalogue: where each model's file lives and what its manifest says.

Runtime code (local runtime, repository writer, server) reads artefacts through this module only;
it needs neither torch nor anything of the build step.

    $HEPINFER_HOME/models/<model>/<version>/<artefact>   the model file
    $HEPINFER_HOME/models/<model>/<version>/manifest.json how it was made (weights, sha256, versions)
    $HEPINFER_HOME/models/<model>/<version>/model_card.md  for trained models
    $HEPINFER_HOME/models/<model>/<version>/model.pt2      the torch engine's program (networks)

Trained artefacts small enough to ship (ParticleNet, the compact ResNet, the BDTs) are part of the
package (``hepinfer/models/trained/``) and installed into the cache by :func:`install_shipped`.
Local inference reads them straight from the package when the cache has none
(:func:`local_artefact`), so a worker without the submit host's ``HEPINFER_HOME`` still scores.

Every function takes a model's :class:`~hepinfer.models.spec.ModelSpec` or its resolved
:class:`~hepinfer.models.resolved.Model`, never a name.

A user model's artefact is its own file (``ModelSpec.artefact_file``): nothing is built, installed
or written beside it; its manifest is what the declaration says (:func:`manifest`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from hepinfer import paths
from hepinfer.errors import ArtefactMissing
from hepinfer.models.checks import file_sha256
from hepinfer.models.registry import BUILTIN
from hepinfer.models.spec import spec_of

TRAINED_DIR = Path(__file__).resolve().parent / "trained"
CARD = "model_card.md"
TORCH_ARTEFACT = "model.pt2"


def artefact_path(model) -> Path:
    """The model file: ``artefact_file`` for a user model, else its place in the cache."""
    spec = spec_of(model)
    if spec.artefact_file is not None:
        return Path(spec.artefact_file)
    return paths.artefact_dir(spec.name, spec.version) / spec.artefact


def torch_artefact_path(model) -> Path:
    """The torch engine's exported program, beside the model's ONNX artefact
    (:mod:`hepinfer.models.architectures.torch_export` writes it)."""
    return artefact_path(model).with_name(TORCH_ARTEFACT)


def is_user_model(model) -> bool:
    """True for a model whose artefact is a file the user declared (not built into the cache)."""
    return spec_of(model).artefact_file is not None


def manifest_path(model) -> Path:
    return artefact_path(model).with_name("manifest.json")


def is_built(model) -> bool:
    if is_user_model(model):
        return artefact_path(model).exists()
    return artefact_path(model).exists() and manifest_path(model).exists()


def manifest(model) -> dict:
    """The manifest of the artefact in the cache ({} when none); for a user model, what its
    declaration says."""
    spec = spec_of(model)
    if spec.artefact_file is not None:
        path = Path(spec.artefact_file)
        return {
            "model": spec.name,
            "weights": "user",
            "source": spec.source or "python",
            "sha256": spec.sha256,
            "bytes": path.stat().st_size if path.exists() else 0,
        }
    try:
        return json.loads(manifest_path(model).read_text())
    except (OSError, ValueError):
        return {}


def is_trained(model) -> bool:
    return manifest(model).get("weights") == "trained"


def is_untrained(model) -> bool:
    """A built-in model that runs with random weights: neither trained in the cache nor shipped
    trained.  A user's model, or one only a server has, comes with its own weights: never untrained."""
    spec = spec_of(model)
    return spec.source == BUILTIN and shipped(spec) is None and not is_trained(spec)


def weights_note(model) -> str:
    """'trained', where a model from elsewhere was declared, or a warning that scores come from an
    untrained network (:func:`is_untrained`)."""
    spec = spec_of(model)
    if is_user_model(spec):
        return f"declared by {manifest(spec)['source']}"
    if spec.source != BUILTIN:
        return f"declared by {spec.source}"
    return "UNTRAINED (random weights): scores carry no physics meaning" if is_untrained(spec) else "trained"


def shipped(model) -> Path | None:
    """The committed trained artefact of ``model``, if hepinfer ships one."""
    spec = spec_of(model)
    if spec.artefact_file is not None or spec.remote_only:
        return None
    path = TRAINED_DIR / spec.name / spec.artefact
    return path if path.exists() else None


def shipped_manifest(model) -> dict:
    spec = spec_of(model)
    return json.loads((TRAINED_DIR / spec.name / "manifest.json").read_text())


def verified_shipped(model) -> Path:
    """The shipped artefact of ``model``, its sha256 checked against the shipped manifest
    (ArtefactMissing naming the file when it differs: a damaged installation)."""
    spec = spec_of(model)
    path = shipped(spec)
    if path is None:
        raise ArtefactMissing(f"model {spec.name!r}: hepinfer ships no trained artefact for it")
    want = shipped_manifest(spec).get("sha256")
    actual = file_sha256(str(path))
    if actual != want:
        raise ArtefactMissing(
            f"model {spec.name!r}: shipped artefact {path} has sha256 {actual}, its manifest says "
            f"{want}: the installation is damaged (reinstall hepinfer, or build the cache: `hepinfer models build`)"
        )
    return path


def local_artefact(model) -> Path:
    """The file local inference loads: the artefact in the cache when there is one (built, installed,
    or trained by the user), else the trained artefact shipped inside the package
    (:func:`verified_shipped`), else the cache's path (missing: the runtime says how to build it)."""
    path = artefact_path(model)
    if path.exists() or is_user_model(model) or shipped(model) is None:
        return path
    return verified_shipped(model)


def install_shipped(model) -> Path:
    """Copy the shipped artefact, its manifest and model card into the cache; return the artefact."""
    spec = spec_of(model)
    src = TRAINED_DIR / spec.name
    dst = paths.artefact_dir(spec.name, spec.version)
    dst.mkdir(parents=True, exist_ok=True)
    for name in (spec.artefact, "manifest.json", CARD):
        if (src / name).exists():
            shutil.copyfile(src / name, dst / name)
    return dst / spec.artefact


def needs_install(model) -> bool:
    """True when the cache lacks the shipped trained artefact or holds an older shipped one: a
    manifest marked ``source: shipped`` with another hash, or one whose hash the shipped manifest
    lists under ``supersedes`` (artefacts shipped before, whatever their manifest said). The user's
    own training (weights trained, not from the package) is never replaced."""
    cached = manifest(model)
    current = shipped_manifest(model)
    sha = cached.get("sha256")
    return (
        not is_built(model)
        or cached.get("weights") != "trained"
        or (cached.get("source") == "shipped" and sha != current.get("sha256"))
        or sha in current.get("supersedes", ())
    )
