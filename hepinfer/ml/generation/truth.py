"""Truth labels of generated jets: the hard-process record of an event (tops, their b quarks and W
bosons, the W decay quarks, the other outgoing partons) and the top matching of a fat jet to it."""

from __future__ import annotations

import numpy as np

from hepinfer.ml.generation import substructure as sub

MATCH_DR = 0.8  # the top, its b and both W quarks within this distance of the jet axis


def gen_particles(ev, process: str):
    """Hard-process record for truth matching: Pythia indices and each one's mother position."""
    chosen: list[int] = []
    mother: dict[int, int] = {}

    def add(i: int, mom: int = -1) -> int:
        if i not in mother:
            chosen.append(i)
            mother[i] = mom
        elif mom >= 0:
            mother[i] = mom
        return chosen.index(i)

    if process == "ttbar":
        for i in range(ev.size()):
            p = ev[i]
            if abs(p.id()) == 6 and p.iBotCopyId() == i:  # last copy of each top
                t = add(i)
                for d in p.daughterList():
                    q = ev[d]
                    if abs(q.id()) == 5:
                        add(d, t)
                    elif abs(q.id()) == 24:
                        wlast = q.iBotCopyId()
                        w = add(wlast, t)
                        for wd in ev[wlast].daughterList():
                            if abs(ev[wd].id()) <= 5:
                                add(wd, w)
    for i in range(ev.size()):
        if abs(ev[i].status()) == 23 and i not in mother:  # other outgoing hard partons
            add(i)
    return chosen, mother


def top_matched(jet_eta, jet_phi, ev, chosen, mother) -> bool:
    """Whether a top of the hard record, its b and both W quarks lie within MATCH_DR of the jet axis."""

    def dr(i):
        p = ev[i]
        return np.hypot(p.eta() - jet_eta, float(sub.delta_phi(p.phi(), jet_phi)))

    for pos, i in enumerate(chosen):
        if abs(ev[i].id()) != 6 or dr(i) > MATCH_DR:
            continue
        kids = [chosen[k] for k, m in enumerate(mother[j] for j in chosen) if m == pos]
        b = [k for k in kids if abs(ev[k].id()) == 5]
        w = [k for k in kids if abs(ev[k].id()) == 24]
        if len(b) != 1 or len(w) != 1:
            continue
        wpos = chosen.index(w[0])
        quarks = [chosen[k] for k, m in enumerate(mother[j] for j in chosen) if m == wpos]
        if len(quarks) == 2 and all(dr(k) < MATCH_DR for k in [b[0], *quarks]):
            return True
    return False
