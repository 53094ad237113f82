"""Checks of the input files before any work: each must open, hold the tree, and have every branch
the chosen models read; truncated files are found from their baskets' extents, and ``deep`` reads
every needed branch once (``--skip-bad-files``).  Errors name the file and what is wrong."""

from __future__ import annotations

import os

from ...errors import InputMismatch
from ...models import get_spec

# coffea's NanoAOD schemas refuse files without the event ids; the rest link fat jets to candidates
STRUCTURE_BRANCHES = (
    "run",
    "luminosityBlock",
    "event",
    "nFatJet",
    "nFatJetPFCands",
    "FatJetPFCands_jetIdx",
    "FatJetPFCands_pFCandsIdx",
    "nPFCands",
)
SELECTION_FIELDS = ("pt", "eta", "msoftdrop")  # TopTagProcessor's selection and mass histogram


def required_branches(models, schema: str = "pfnano") -> list[str]:
    """The branches hepinfer reads for ``models``.  PFNanoAODSchema links fat jets to their
    candidates through FatJet_nConstituents (without it ``FatJet.constituents`` fails)."""
    from ...features import REQUIRED_FIELDS

    jet_fields, cons_fields = set(SELECTION_FIELDS), set()
    if schema == "pfnano":
        jet_fields.add("nConstituents")
    for m in models:
        j, c = REQUIRED_FIELDS[get_spec(m).name]
        jet_fields |= set(j)
        cons_fields |= set(c)
    return [
        *STRUCTURE_BRANCHES,
        *(f"FatJet_{f}" for f in sorted(jet_fields)),
        *(f"PFCands_{f}" for f in sorted(cons_fields)),
    ]


def check_inputs(files, models, treename: str = "Events", schema: str = "pfnano") -> int:
    """Open every file and check it has the tree and the branches ``models`` read, and that the
    branches' baskets lie inside the file (a truncated copy fails here); returns the total number
    of events.  The first bad file raises InputMismatch naming the file and what is wrong."""
    total, _, bad = inspect_inputs(files, models, treename, schema)
    if bad:
        raise next(iter(bad.values()))
    return total


def inspect_inputs(files, models, treename: str = "Events", schema: str = "pfnano", deep: bool = False):
    """``(events in the good files, good files, {bad file: InputMismatch})``.  ``deep`` also reads
    every needed branch of every file once, so corrupt (not only truncated) data is found before the
    run; ``--skip-bad-files`` uses it."""
    good, bad, total = [], {}, 0
    need = required_branches(models, schema)
    for path in files:
        try:
            total += _inspect_file(path, need, models, treename, schema, deep)
            good.append(path)
        except InputMismatch as err:
            bad[path] = err
    return total, good, bad


def _inspect_file(path, need, models, treename, schema, deep) -> int:
    import uproot

    try:
        with uproot.open(path) as f:
            if treename not in f:
                raise InputMismatch(f"{path}: no tree {treename!r} (has {sorted(k.split(';')[0] for k in f.keys())})")
            tree = f[treename]
            missing = [b for b in need if b not in tree]
            if missing:
                raise InputMismatch(
                    f"{path}: tree {treename!r} lacks the branches {missing}, needed by {', '.join(models)} "
                    f"with the {schema} schema (hepinfer reads NanoAOD/PFNano fat jets with their PF candidates: "
                    "FatJet_*, FatJetPFCands_*, PFCands_*)"
                )
            size = os.path.getsize(path) if os.path.isfile(path) else None
            for name in need:
                branch = tree[name]
                n = branch.num_baskets
                seeks, nbytes = branch.member("fBasketSeek")[:n], branch.member("fBasketBytes")[:n]
                if size is not None and n and int(max(s + b for s, b in zip(seeks, nbytes))) > size:
                    raise InputMismatch(
                        f"{path}: branch {name!r} has data beyond the end of the file "
                        f"({size} bytes): the file is truncated"
                    )
            if deep:
                for start in range(0, tree.num_entries, 100_000):
                    for name in need:
                        try:
                            tree[name].array(entry_start=start, entry_stop=start + 100_000, library="np")
                        except Exception as err:  # noqa: BLE001 - decompression / deserialisation
                            raise InputMismatch(
                                f"{path}: branch {name!r}, entries from {start}: cannot be read "
                                f"({type(err).__name__}: {err})"
                            ) from err
            return tree.num_entries
    except InputMismatch:
        raise
    except Exception as err:  # uproot / OS errors on unreadable or truncated files
        raise InputMismatch(f"{path}: cannot be read as a ROOT file: {type(err).__name__}: {err}") from err
