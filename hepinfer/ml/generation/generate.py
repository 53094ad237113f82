"""Event generation: Pythia 8 (pythia8mc) + FastJet -> a NanoAOD/PFNano-shaped ``Events`` tree.

``hepinfer generate --process ttbar|qcd --events N --seed S -o FILE.root`` calls :func:`generate`.

Physics choices (13 TeV pp, Pythia's default tune, MPI/ISR/FSR/hadronisation on, no pile-up):

* ``ttbar``: gg/qq -> tt with both W bosons forced to quarks (hadronic tops), signal.
* ``qcd``: all hard QCD 2 -> 2, background.
* both with the hard-process pT-hat in ``pt_hat`` (default [500, 700] GeV); the shipped taggers'
  samples use the bins ``TRAINING_PT_HAT_BINS`` (200 GeV-2.8 TeV: fat jets of 200 GeV-2.5 TeV).
* ``detector="cms"`` (the default): the visible particles pass through :mod:`~hepinfer.ml.generation.detector`
  (tracking, calorimeter resolutions, thresholds) before clustering; ``"none"``: truth level.
* "PF candidates" are the visible final-state particles (neutrinos dropped) with ``|eta| < 5``; d0/dz
  are the straight-line impact parameters of the production vertex with respect to the beam line
  and the origin, in cm (non-zero for decays of B/D hadrons, K_S, Lambda, ...).
* ``FatJet``: anti-kT R = 0.8, pT > 200 GeV, ``|eta| < 2.5``; ``Jet``: anti-kT R = 0.4, pT > 20 GeV,
  ``|eta| < 4.7``; substructure as :mod:`hepinfer.ml.generation.substructure` documents.
* ``PFCands`` holds the constituents of the stored fat jets (PFNano's AK8-only configuration),
  linked by ``FatJetPFCands_jetIdx`` / ``FatJetPFCands_pFCandsIdx``, with ``FatJet_nConstituents``
  (coffea needs it to build ``FatJet.constituents``).
* ``GenPart``: the last-copy tops, their b quarks and W bosons, the W decay quarks (ttbar) and the
  outgoing hard partons (both), with ``genPartIdxMother`` within the stored list.
* ``FatJet_label`` (:mod:`~hepinfer.ml.generation.truth`): 1 = top-matched jet (the top, its b and
  both W quarks within dR < 0.8 of the jet axis), 0 = jet from the QCD sample, -1 = unmatched jet of
  the ttbar sample.

Layouts and formats (:mod:`hepinfer.ml.generation.nanoaod`): ``layout="pfnano"`` (everything above, the
default), ``"pfnano-nocount"`` (without ``FatJet_nConstituents``, as older PFNano releases) or
``"nanoaod"`` (standard NanoAOD: no PFCands / FatJetPFCands); ``format="ttree"`` (the default) or
``"rntuple"`` (CMS's RNTuple NanoAOD layout).  The events and every kept branch are the same for a
given seed whatever the layout and format.

Same seed -> the same contents in every branch (the ROOT file's own timestamps differ).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hepinfer.errors import ConfigError, HepinferError
from hepinfer.ml.generation import nanoaod
from hepinfer.ml.generation import substructure as sub
from hepinfer.ml.generation.detector import DETECTORS, respond
from hepinfer.ml.generation.nanoaod import (
    FATJET_FIELDS,
    GEN_FIELDS,
    JET_FIELDS,
    LINK_FIELDS,
    PF_FIELDS,
    Columns,
    write_events,
)
from hepinfer.ml.generation.truth import gen_particles, top_matched

PROCESSES = {
    "ttbar": ["Top:gg2ttbar = on", "Top:qqbar2ttbar = on", "24:onMode = off", "24:onIfAny = 1 2 3 4 5"],
    "qcd": ["HardQCD:all = on"],
}
PT_HAT_GEV = (500.0, 700.0)
# pT-hat bins of the shipped taggers' samples: fat jets from 200 GeV to 2.5 TeV (training.md)
TRAINING_PT_HAT_BINS = ((200.0, 400.0), (400.0, 700.0), (700.0, 1100.0), (1100.0, 1700.0), (1700.0, 2800.0))
FATJET_PT_MIN, FATJET_ETA_MAX, FATJET_R = 200.0, 2.5, 0.8
JET_PT_MIN, JET_ETA_MAX, JET_R = 20.0, 4.7, 0.4
PARTICLE_ETA_MAX = 5.0
INVISIBLE = {12, 14, 16}


@dataclass(frozen=True)
class GenerationSettings:
    process: str
    events: int
    seed: int
    layout: str = "pfnano"
    format: str = "ttree"
    pt_hat: tuple[float, float] = PT_HAT_GEV
    detector: str = "cms"

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ConfigError(f"unknown detector response {self.detector!r}; choose one of {list(DETECTORS)}")
        lo, hi = self.pt_hat
        if not 0 <= lo < hi:
            raise ConfigError(f"pT-hat range must be 0 <= min < max GeV, got {lo:g} {hi:g}")
        if self.process not in PROCESSES:
            raise ConfigError(f"unknown process {self.process!r}; choose one of {sorted(PROCESSES)}")
        if self.layout not in nanoaod.LAYOUTS:
            raise ConfigError(f"unknown layout {self.layout!r}; choose one of {list(nanoaod.LAYOUTS)}")
        if self.format not in nanoaod.FORMATS:
            raise ConfigError(f"unknown format {self.format!r}; choose one of {list(nanoaod.FORMATS)}")
        if self.events < 1:
            raise ConfigError(f"events must be >= 1, got {self.events}")
        if not 0 <= self.seed <= 900_000_000:
            raise ConfigError(f"Pythia seeds lie in 0..900000000, got {self.seed}")

    def pythia_lines(self) -> list[str]:
        return [
            "Beams:eCM = 13000.",
            *PROCESSES[self.process],
            f"PhaseSpace:pTHatMin = {self.pt_hat[0]}",
            f"PhaseSpace:pTHatMax = {self.pt_hat[1]}",
            "Random:setSeed = on",
            f"Random:seed = {self.seed}",
            "Next:numberCount = 0",
            "Print:quiet = on",
        ]


def _imports():
    try:
        import fastjet
        import pythia8mc
    except ImportError as err:
        raise HepinferError(
            f"event generation needs {err.name}: pip install 'hepinfer[generate]' (pythia8mc==8.317.2, fastjet)"
        ) from err
    return pythia8mc, fastjet


def _kinematics(px, py, pz, e):
    pt = np.hypot(px, py)
    p = np.sqrt(pt**2 + pz**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.where(pt > 0, np.arcsinh(np.where(pt > 0, pz / np.where(pt > 0, pt, 1), 0)), np.sign(pz) * 1e3)
    phi = np.arctan2(py, px)
    mass = np.sqrt(np.maximum(e**2 - p**2, 0.0))
    return pt, eta, phi, mass


def _visible_particles(ev) -> np.ndarray:
    """(n, 9): px, py, pz, E, pdgId, charge, x, y, z (mm) of the visible final-state particles."""
    rows = []
    for i in range(ev.size()):
        p = ev[i]
        if p.isFinal() and abs(p.id()) not in INVISIBLE and abs(p.eta()) < PARTICLE_ETA_MAX:
            rows.append((p.px(), p.py(), p.pz(), p.e(), p.id(), p.charge(), p.xProd(), p.yProd(), p.zProd()))
    return np.array(rows, dtype=np.float64).reshape(-1, 9)


def _fat_jet_row(j, kin, fastjet, label: int):
    """One FatJet row and the particle indices of its constituents, hardest first."""
    pt, eta, phi = kin
    cons = list(j.constituents())
    idx = np.array([c.user_index() for c in cons], dtype=np.int64)
    idx = idx[np.argsort(-pt[idx], kind="stable")]
    cpt, ceta, cphi = pt[idx], eta[idx], phi[idx]
    taus = [sub.nsubjettiness(cpt, ceta, cphi, *sub.exclusive_axes(cons, n, fastjet)) for n in (1, 2, 3, 4)]
    n2, n3 = sub.energy_correlation_ratios(cpt, ceta, cphi, j.pt())
    mass = np.sqrt(j.m2()) if j.m2() > 0 else 0.0
    row = (
        j.pt(),
        j.eta(),
        j.phi_std(),
        mass,
        sub.soft_drop_mass(cons, fastjet),
        *taus,
        n2,
        n3,
        min(len(idx), 255),
        label,
    )
    return row, idx


def _impact_parameters(arr: np.ndarray, used: np.ndarray):
    """Straight-line d0 (signed, transverse) and dz of the production vertices, in cm."""
    x, y, z = arr[used, 6], arr[used, 7], arr[used, 8]
    px, py, pz = arr[used, 0], arr[used, 1], arr[used, 2]
    pt = np.hypot(px, py)
    safe = np.where(pt > 0, pt, 1.0)
    d0 = np.where(pt > 0, (x * py - y * px) / safe, 0.0)
    dz = z - np.where(pt > 0, (x * px + y * py) / safe * pz / safe, 0.0)
    return d0 / 10.0, dz / 10.0  # mm -> cm


def _record_event(ev, process, fastjet, ak8, ak4, pf, fat, jets, links, gen, rng=None) -> None:
    arr = _visible_particles(ev)
    if rng is not None:  # the detector response
        arr = respond(arr, rng)
    pt, eta, phi, mass = _kinematics(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3])
    pseudo = []
    for k in range(len(arr)):
        pj = fastjet.PseudoJet(*arr[k, :4])
        pj.set_user_index(k)
        pseudo.append(pj)
    cs8 = fastjet.ClusterSequence(pseudo, ak8)
    fat_jets = [j for j in fastjet.sorted_by_pt(cs8.inclusive_jets(FATJET_PT_MIN)) if abs(j.eta()) < FATJET_ETA_MAX]
    cs4 = fastjet.ClusterSequence(pseudo, ak4)
    small_jets = [j for j in fastjet.sorted_by_pt(cs4.inclusive_jets(JET_PT_MIN)) if abs(j.eta()) < JET_ETA_MAX]

    chosen, mother = gen_particles(ev, process)
    rows, members = [], []
    for j in fat_jets:
        label = 0 if process == "qcd" else (1 if top_matched(j.eta(), j.phi_std(), ev, chosen, mother) else -1)
        row, idx = _fat_jet_row(j, (pt, eta, phi), fastjet, label)
        rows.append(row)
        members.append(idx)
    fr = np.array(rows, dtype=np.float64).reshape(-1, len(FATJET_FIELDS))
    fat.add(len(fr), **{f: fr[:, c] for c, f in enumerate(FATJET_FIELDS)})

    # PF candidates: the union of the fat jets' constituents, ordered by pT
    used = np.unique(np.concatenate(members)) if members else np.zeros(0, np.int64)
    used = used[np.argsort(-pt[used], kind="stable")]
    d0, dz = _impact_parameters(arr, used)
    pf.add(
        len(used),
        pt=pt[used],
        eta=eta[used],
        phi=phi[used],
        mass=mass[used],
        charge=arr[used, 5],
        pdgId=arr[used, 4],
        d0=d0,
        dz=dz,
    )
    position = {int(k): n for n, k in enumerate(used)}
    jet_idx = np.concatenate([np.full(len(m), n) for n, m in enumerate(members)]) if members else np.zeros(0)
    cand_idx = np.array([position[int(k)] for m in members for k in m], dtype=np.int64)
    links.add(len(cand_idx), jetIdx=jet_idx, pFCandsIdx=cand_idx)

    jr = np.array(
        [
            (j.pt(), j.eta(), j.phi_std(), np.sqrt(max(j.m2(), 0.0)), min(len(j.constituents()), 255))
            for j in small_jets
        ],
        dtype=np.float64,
    ).reshape(-1, len(JET_FIELDS))
    jets.add(len(jr), **{f: jr[:, c] for c, f in enumerate(JET_FIELDS)})

    gr = []
    for i in chosen:
        p = ev[i]
        flags = (1 << 7) | ((1 << 13) if p.iBotCopyId() == i else 0)  # isHardProcess, isLastCopy
        gr.append((p.pT(), p.eta() if p.pT() > 0 else 0.0, p.phi(), p.m(), p.id(), abs(p.status()), mother[i], flags))
    g = np.array(gr, dtype=np.float64).reshape(-1, len(GEN_FIELDS))
    gen.add(len(g), **{f: g[:, c] for c, f in enumerate(GEN_FIELDS)})


def generate(
    process: str,
    events: int,
    seed: int,
    output: str | Path,
    *,
    progress: bool = True,
    layout: str = "pfnano",
    format: str = "ttree",
    pt_hat: tuple[float, float] = PT_HAT_GEV,
    detector: str = "cms",
) -> Path:
    """Generate ``events`` events of ``process`` with ``seed`` and write them to ``output`` in
    ``layout`` (``LAYOUTS``) as ``format`` (``FORMATS``), pT-hat in ``pt_hat`` (GeV), through the
    ``detector`` response (``DETECTORS``)."""
    settings = GenerationSettings(process, events, seed, layout, format, tuple(pt_hat), detector)
    rng = np.random.default_rng([seed, 0xDE7]) if detector == "cms" else None
    pythia8mc, fastjet = _imports()
    pythia = pythia8mc.Pythia("", False)
    for line in settings.pythia_lines():
        if not pythia.readString(line):
            raise HepinferError(f"Pythia rejected the setting {line!r}")
    if not pythia.init():
        raise HepinferError(f"Pythia failed to initialise for {process!r}")
    ak8 = fastjet.JetDefinition(fastjet.antikt_algorithm, FATJET_R)
    ak4 = fastjet.JetDefinition(fastjet.antikt_algorithm, JET_R)

    pf, fat, jets, links, gen = (
        Columns(list(f)) for f in (PF_FIELDS, FATJET_FIELDS, JET_FIELDS, LINK_FIELDS, GEN_FIELDS)
    )
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=events, desc=f"{process} seed {seed}", unit="ev")
    done = failures = 0
    while done < events:
        if not pythia.next():
            failures += 1
            if failures > 100 + events // 10:
                raise HepinferError(f"Pythia failed {failures} times generating {process!r}")
            continue
        _record_event(pythia.event, process, fastjet, ak8, ak4, pf, fat, jets, links, gen, rng)
        done += 1
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".part")
    branches = {
        "run": np.ones(events, dtype=np.uint32),
        "luminosityBlock": np.full(events, seed % (2**31), dtype=np.uint32),
        "event": np.arange(1, events + 1, dtype=np.uint64),
        "FatJet": fat.to_awkward(FATJET_FIELDS),
        "Jet": jets.to_awkward(JET_FIELDS),
        "PFCands": pf.to_awkward(PF_FIELDS),
        "FatJetPFCands": links.to_awkward(LINK_FIELDS),
        "GenPart": gen.to_awkward(GEN_FIELDS),
    }
    write_events(tmp, nanoaod.in_layout(branches, layout), format)
    os.replace(tmp, output)
    return output


def _one(args):
    process, events, seed, output, kinds = args
    t0 = time.perf_counter()
    generate(process, events, seed, output, progress=False, **kinds)
    return output, time.perf_counter() - t0


def generate_many(
    process: str,
    events: int,
    seeds,
    pattern: str,
    *,
    jobs: int | None = None,
    progress: bool = True,
    layout: str = "pfnano",
    format: str = "ttree",
    pt_hat: tuple[float, float] = PT_HAT_GEV,
    detector: str = "cms",
):
    """Generate one file per seed in parallel processes; ``pattern`` holds ``{seed}``."""
    seeds = list(seeds)
    if "{seed}" not in pattern and len(seeds) > 1:
        raise ConfigError(f"output {pattern!r} must contain {{seed}} when several files are generated")
    kinds = dict(layout=layout, format=format, pt_hat=tuple(pt_hat), detector=detector)
    for s in seeds:
        GenerationSettings(process, events, s, **kinds)
    tasks = [(process, events, s, pattern.format(seed=s), kinds) for s in seeds]
    jobs = jobs or min(len(tasks), os.cpu_count() or 1)
    if jobs == 1 or len(tasks) == 1:
        return [generate(*t[:4], progress=progress, **kinds) for t in tasks]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(tasks), desc=f"{process}: files", unit="file")
    outputs = []
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for fut in as_completed([pool.submit(_one, t) for t in tasks]):
            outputs.append(Path(fut.result()[0]))
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return sorted(outputs)
