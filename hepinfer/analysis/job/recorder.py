"""The processor of a run with ``--check-local``: TopTagProcessor that also returns the score of every
jet each model scored (selected and inside the model's domain), so that the run and its local rerun
can be compared jet by jet (hepinfer.analysis.job.agreement)."""

from __future__ import annotations

import copy

import awkward as ak

from hepinfer.analysis.processor import TopTagProcessor


class ScoreRecorder(TopTagProcessor):
    """TopTagProcessor whose output also holds ``scores``: {model: {(file, first entry): scores of the
    chunk's selected jets}} (eager chunks; the key orders the chunks whatever order they finish in)."""

    _recorded: dict | None = None

    def process(self, events):
        recording = copy.copy(self)  # a chunk's own copy: tasks may run in threads of one process
        recording._recorded = {}
        out = TopTagProcessor.process(recording, events)
        meta = events.metadata
        chunk = (str(meta["filename"]), int(meta["entrystart"]))
        out["scores"] = {model: {chunk: scores} for model, scores in recording._recorded.items()}
        return out

    def _tag_all(self, subsets: dict, is_dask: bool) -> dict:
        out = super()._tag_all(subsets, is_dask)
        if self._recorded is not None and not is_dask:
            for model, (tags, _reports) in out.items():
                self._recorded[model] = ak.to_numpy(ak.flatten(tags)["score"])
        return out
