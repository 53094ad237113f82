"""Checks of the input files before any work, and the models they can feed.

Each file must open and hold the tree; a model can run on a file when the file has every branch the
model reads (:func:`required_branches`, worked out once per model).  The functions take resolved
models (:class:`hepinfer.models.resolved.Model`, as the job passes them); a name or a ModelSpec is
resolved where it comes in.  Models named by the user must run on every file (else the
error names the file, the model and the branches); in automatic mode (``JobSettings.models=None``)
:func:`select_models` keeps the models every file can feed and says why it skipped the others.

TTree files: truncated files are found from their baskets' extents, and ``deep`` reads every needed
branch once (``--skip-bad-files``).  RNTuple files are checked field by field with the same branch
names, in both layouts: CMS's NanoAOD converted to RNTuple by ROOT (flat top-level fields
``FatJet_pt`` and ``nFatJet``, projections of an unnamed ``_collectionN`` field of records, which is
skipped) and a field of records per collection (``FatJet.pt`` counts as ``FatJet_pt``, the
collection field as its ``nFatJet``).  The basket-extent check is TTree-specific and skipped there
(an RNTuple's footer lies at the end of the file, so a truncated copy fails to open), ``deep`` reads
the fields.  Errors name the file and what is wrong.  The job then reads RNTuple files, as TTrees,
through coffea's processor.Runner, whose chunks are virtual NanoEvents (coffea's dask mode does not
open RNTuple files).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from hepinfer.errors import InputMismatch
from hepinfer.models.resolved import resolve

# coffea's NanoAOD schemas refuse files without the event ids; nFatJet gives the fat jets' layout
STRUCTURE_BRANCHES = ("run", "luminosityBlock", "event", "nFatJet")
# the table that links fat jets to their PF candidates (PFNano), for models that read the candidates
LINK_BRANCHES = ("nFatJetPFCands", "FatJetPFCands_jetIdx", "FatJetPFCands_pFCandsIdx", "nPFCands")
SELECTION_FIELDS = ("pt", "eta", "msoftdrop")  # TopTagProcessor's selection and mass histogram


def model_fields(model) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    """(FatJet fields, PFCands fields) ``model``'s builder reads; PFCands fields None when unknown
    (a builder outside hepinfer.features: its candidates' fields are not checked, the link table is)."""
    fields = resolve(model).required_fields
    return (tuple(fields[0]), tuple(fields[1])) if fields is not None else ((), None)


def required_branches(models, schema: str = "pfnano") -> list[str]:
    """The branches hepinfer reads for ``models``, the same with either schema: FatJet_nConstituents is
    not needed (without it the constituents come from the FatJetPFCands link table, not coffea's
    ``FatJet.constituents``), and models that read the FatJet branches alone need no PF candidates."""
    jet_fields, cons_fields, links = set(SELECTION_FIELDS), set(), False
    for m in map(resolve, models):
        jets, cons = model_fields(m)
        jet_fields |= set(jets)
        cons_fields |= set(cons or ())
        links = links or m.reads_constituents
    return [
        *STRUCTURE_BRANCHES,
        *(LINK_BRANCHES if links else ()),
        *(f"FatJet_{f}" for f in sorted(jet_fields)),
        *(f"PFCands_{f}" for f in sorted(cons_fields)),
    ]


@dataclass
class InputScan:
    """What the checks found: events in the good files, the good files with their branch names,
    {bad file: InputMismatch}, and {model: the branches it reads} of the models checked."""

    events: int = 0
    branches: dict[str, frozenset[str]] = field(default_factory=dict)
    bad: dict[str, InputMismatch] = field(default_factory=dict)
    needs: dict[str, list[str]] = field(default_factory=dict)

    @property
    def good(self) -> list[str]:
        return list(self.branches)

    def needed(self, model) -> list[str]:
        """The branches ``model`` reads (worked out once per model)."""
        m = resolve(model)
        if m.name not in self.needs:
            self.needs[m.name] = required_branches([m])
        return self.needs[m.name]

    def missing(self, model, path) -> list[str]:
        return [b for b in self.needed(model) if b not in self.branches[path]]


def check_inputs(files, models, treename: str = "Events", schema: str = "pfnano") -> int:
    """Open every file and check it has the tree and the branches ``models`` read, and that the
    branches' baskets lie inside the file (a truncated copy fails here); returns the total number
    of events.  The first bad file raises InputMismatch naming the file and what is wrong."""
    total, _, bad = inspect_inputs(files, models, treename, schema)
    if bad:
        raise next(iter(bad.values()))
    return total


def inspect_inputs(files, models, treename: str = "Events", schema: str = "pfnano", deep: bool = False):
    """``(events in the good files, good files, {bad file: InputMismatch})``: a file is bad when it
    cannot be read or lacks a branch one of ``models`` reads.  ``deep`` also reads every needed branch
    of every file once, so corrupt (not only truncated) data is found before the run;
    ``--skip-bad-files`` uses it."""
    scan = scan_inputs(files, models, treename, deep, require_all=True)
    return scan.events, scan.good, scan.bad


def scan_inputs(files, models, treename: str = "Events", deep: bool = False, require_all: bool = False) -> InputScan:
    """Open every file once.  With ``require_all`` a file that lacks a branch of any of ``models`` is
    bad; without, a file is bad only when it cannot be read or none of ``models`` can run on it."""
    scan = InputScan()
    models = tuple(map(resolve, models))
    need, per_model = required_branches(models), {m.name: scan.needed(m) for m in models}
    for path in files:
        try:
            entries, names = _inspect_file(path, need, treename, deep)
            lacking = {m: missing for m, own in per_model.items() if (missing := [b for b in own if b not in names])}
            if lacking and (require_all or len(lacking) == len(models)):
                raise InputMismatch(
                    "; ".join(
                        f"{path}: tree {treename!r} lacks the branches {missing}, needed by {m}"
                        for m, missing in lacking.items()
                    )
                    + " (hepinfer reads NanoAOD/PFNano fat jets: FatJet_*, and for models that read the PF "
                    "candidates FatJetPFCands_*, PFCands_*)"
                )
            scan.events += entries
            scan.branches[path] = names
        except InputMismatch as err:
            scan.bad[path] = err
    return scan


def select_models(scan: InputScan, candidates) -> tuple[tuple, dict[str, str]]:
    """The candidates (as given: names or Models) that every good file can feed, and {skipped
    model's name: why}."""
    chosen, skipped = [], {}
    for m in candidates:
        model = resolve(m)
        lacking: dict[tuple[str, ...], list[str]] = {}  # the same missing branches -> the files
        for path in scan.good:
            if missing := scan.missing(model, path):
                lacking.setdefault(tuple(missing), []).append(os.path.basename(path))
        if lacking:
            skipped[model.name] = "; ".join(_lack(files, list(missing)) for missing, files in lacking.items())
        else:
            chosen.append(m)
    return tuple(chosen), skipped


def _lack(files: list[str], missing: list[str]) -> str:
    named = ", ".join(files[:3]) + (f" and {len(files) - 3} more files" if len(files) > 3 else "")
    hint = " (no PF candidates: standard NanoAOD)" if set(LINK_BRANCHES) <= set(missing) else ""
    return f"{named} lack{'s' if len(files) == 1 else ''} the branches {missing}{hint}"


def _names(tree, rntuple: bool) -> frozenset[str]:
    """The branch names of a TTree; for an RNTuple the equivalent names of its fields: ``FatJet_pt``
    and ``nFatJet`` as they are (NanoAOD converted by ROOT: the ``_collectionN`` fields behind them
    add nothing), ``FatJet.pt`` (a collection of records) counts as ``FatJet_pt`` and gives ``nFatJet``."""
    keys = tree.keys()
    if not rntuple:
        return frozenset(keys)
    names = set()
    for key in keys:
        parts = [p for p in key.split(".") if not p.startswith("_")]  # "_0": the record inside a vector
        if not parts:  # "_collection2": the records behind flat fields (FatJet_pt), named in their own keys
            continue
        if len(parts) == 1:
            names.add(parts[0])
        else:
            names |= {f"n{parts[0]}", f"{parts[0]}_{parts[-1]}"}
    return frozenset(names)


def _field(tree, name: str) -> str | None:
    """The RNTuple field holding branch ``name`` (None for a collection's count: its fields hold it)."""
    prefix, _, sub = name.partition("_")
    if name in tree.keys():
        return name
    return next((k for k in tree.keys() if k.startswith(prefix + ".") and k.split(".")[-1] == sub), None)


def _inspect_file(path, need, treename, deep) -> tuple[int, frozenset[str]]:
    import uproot

    try:
        with uproot.open(path) as f:
            if treename not in f:
                raise InputMismatch(f"{path}: no tree {treename!r} (has {sorted(k.split(';')[0] for k in f.keys())})")
            tree = f[treename]
            rntuple = isinstance(tree, uproot.behaviors.RNTuple.HasFields)
            names = _names(tree, rntuple)
            present = [b for b in need if b in names]
            if not rntuple:
                _check_extents(path, tree, present)
            if deep:
                _read_all(path, tree, present, rntuple)
            return tree.num_entries, names
    except InputMismatch:
        raise
    except Exception as err:  # uproot / OS errors on unreadable or truncated files
        raise InputMismatch(f"{path}: cannot be read as a ROOT file: {type(err).__name__}: {err}") from err


def _check_extents(path, tree, names) -> None:
    size = os.path.getsize(path) if os.path.isfile(path) else None
    for name in names:
        branch = tree[name]
        n = branch.num_baskets
        seeks, nbytes = branch.member("fBasketSeek")[:n], branch.member("fBasketBytes")[:n]
        if size is not None and n and int(max(s + b for s, b in zip(seeks, nbytes))) > size:
            raise InputMismatch(
                f"{path}: branch {name!r} has data beyond the end of the file ({size} bytes): the file is truncated"
            )


def _read_all(path, tree, names, rntuple: bool) -> None:
    columns = [(n, _field(tree, n) if rntuple else n) for n in names]
    for start in range(0, tree.num_entries, 100_000):
        for name, column in columns:
            if column is None:
                continue
            try:
                if rntuple:
                    tree[column].array(entry_start=start, entry_stop=start + 100_000)
                else:
                    tree[column].array(entry_start=start, entry_stop=start + 100_000, library="np")
            except Exception as err:  # noqa: BLE001 - decompression / deserialisation
                raise InputMismatch(
                    f"{path}: branch {name!r}, entries from {start}: cannot be read ({type(err).__name__}: {err})"
                ) from err
