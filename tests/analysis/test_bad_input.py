"""Bad input, each with the message that names the culprit: truncated and corrupt ROOT files (and
--skip-bad-files), NaN / inf in the features, jets without constituents.  Real generated files,
damaged the way files get damaged; the other kinds of bad input are tested where their code
lives (missing branch: test_job.py; oversize batches: test_triton.py; wrong dtype and unknown
model: test_config.py / test_spec.py; malformed URL: test_urls.py; model not loaded:
test_server.py, test_triton.py)."""

import json
import shutil

import awkward as ak
import numpy as np
import pytest
import uproot
from hypothesis import given, settings
from hypothesis import strategies as st

import hepinfer
from hepinfer import InferenceConfig
from hepinfer.analysis.job import check_inputs, inspect_inputs, run_job
from hepinfer.errors import InputMismatch
from hepinfer.features.common import finite_inputs

MODELS = ("particlenet", "bdt")


def truncated(src, dst, fraction=0.6):
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def corrupted(src, dst, branch="PFCands_pt"):
    """A copy whose ``branch`` basket has its compressed payload overwritten in the middle."""
    shutil.copyfile(src, dst)
    with uproot.open(dst) as f:
        b = f["Events"][branch]
        seek, size = int(b.member("fBasketSeek")[0]), int(b.member("fBasketBytes")[0])
    with open(dst, "r+b") as fh:
        fh.seek(seek + size // 2)
        fh.write(bytes(range(256)) * 2)
    return dst


@pytest.fixture(scope="module")
def damaged(generated, tmp_path_factory):
    out = tmp_path_factory.mktemp("damaged")
    return {
        "truncated": truncated(generated["ttbar"], out / "truncated.root"),
        "corrupt": corrupted(generated["qcd"], out / "corrupt.root"),
    }


def test_truncated_file_is_named_before_the_run(generated, damaged):
    with pytest.raises(InputMismatch, match=r"truncated\.root") as info:
        check_inputs([str(generated["qcd"]), str(damaged["truncated"])], MODELS)
    assert "truncated" in str(info.value) or "cannot be read" in str(info.value)


def test_corrupt_basket_is_found_by_the_deep_check(generated, damaged):
    total, good, bad = inspect_inputs([str(generated["ttbar"]), str(damaged["corrupt"])], MODELS, deep=True)
    assert good == [str(generated["ttbar"])] and total == 150
    (message,) = [str(e) for e in bad.values()]
    assert "corrupt.root" in message and "PFCands_pt" in message


def test_corrupt_file_without_skip_fails_naming_file_and_entries(generated, damaged, job_settings, artefacts, tmp_path):
    settings = job_settings(
        inputs=(str(generated["ttbar"]), str(damaged["corrupt"])),
        models=("bdt",),
        config=InferenceConfig(mode="local"),
        executor="iterative",
        chunksize=75,
    )
    with pytest.raises(Exception) as info:
        run_job(settings, output=tmp_path / "s.json")
    text = str(info.value) + " ".join(getattr(info.value, "__notes__", []))
    assert "corrupt.root" in text and "--skip-bad-files" in text
    assert not (tmp_path / "s.json").exists()


@pytest.mark.slow
def test_skip_bad_files_finishes_the_rest_and_lists_the_skipped(generated, damaged, job_settings, artefacts, tmp_path):
    files = (str(generated["ttbar"]), str(damaged["truncated"]), str(damaged["corrupt"]), str(generated["qcd"]))
    settings = job_settings(
        inputs=files, config=InferenceConfig(mode="local"), executor="iterative", chunksize=100, skip_bad_files=True
    )
    result = run_job(settings, output=tmp_path / "s.json")
    s = json.loads((tmp_path / "s.json").read_text())
    assert sorted(s["skipped_files"]) == sorted([str(damaged["truncated"]), str(damaged["corrupt"])])
    assert "PFCands_pt" in s["skipped_files"][str(damaged["corrupt"])]
    assert s["events"] == 300 and s["inputs"] == [str(generated["ttbar"]), str(generated["qcd"])]
    clean = run_job(
        job_settings(
            inputs=(files[0], files[3]), config=InferenceConfig(mode="local"), executor="iterative", chunksize=100
        )
    )
    assert result.summary["histograms"] == clean.summary["histograms"]
    with pytest.raises(InputMismatch, match="every input file is bad"):
        run_job(job_settings(inputs=files[1:3], config=InferenceConfig(mode="local"), skip_bad_files=True))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 12), st.integers(1, 5), st.floats(0, 1), st.integers(0, 2**31))
def test_nonfinite_policy_replaces_by_zero_and_marks_the_rows(rows, width, share, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(rows, width)).astype(np.float32)
    b = rng.normal(size=(rows, 2, width)).astype(np.float32)
    holes = rng.random(a.shape) < share
    a[holes] = rng.choice([np.nan, np.inf, -np.inf], holes.sum())
    out, touched = finite_inputs({"a": a, "b": b})
    assert out["a"].dtype == np.float32 and np.isfinite(out["a"]).all() and out["b"] is b
    assert touched.tolist() == holes.any(axis=1).tolist()
    assert np.array_equal(out["a"][~holes], a[~holes]) and (out["a"][holes] == 0).all()


@pytest.mark.triton
@pytest.mark.slow
def test_nan_and_inf_in_a_file_are_counted_and_local_equals_remote(
    generated, server, rewrite_file, job_settings, tmp_path
):
    def poison(name, array):  # every 7th PF candidate: pt NaN; every 11th: eta +inf
        if name not in ("PFCands_pt", "PFCands_eta"):
            return array
        flat = ak.to_numpy(ak.flatten(array)).copy()
        flat[:: 7 if name == "PFCands_pt" else 11] = np.nan if name == "PFCands_pt" else np.inf
        return ak.unflatten(flat, ak.num(array))

    bad = rewrite_file(generated["ttbar"], tmp_path / "nan.root", cast=poison)
    runs = {
        mode: run_job(
            job_settings(
                inputs=(str(bad),),
                config=InferenceConfig(mode=mode, url=server.url),
                executor="iterative",
                chunksize=50,
            )
        )
        for mode in ("local", "remote")
    }
    for mode, r in runs.items():
        s = r.summary
        for m in MODELS:
            assert s["inference"][m]["nonfinite_jets"] > 0, (mode, m)
            assert s["fatjets_scored"][m] == s["fatjets_selected"]
            assert r.hists["score"][{"model": m}].values().sum() == s["fatjets_selected"]  # all finite, in range
    assert runs["local"].summary["histograms"] == runs["remote"].summary["histograms"]


def test_jets_without_constituents_and_events_without_jets_stay_aligned(pfnano_events, artefacts):
    from hepinfer.coffea import JetTagger

    every = pfnano_events.FatJet
    window = (every.pt >= 550) & (every.pt <= 650)  # a narrow pT window: many events keep no fat jet
    fat = every[window]
    cons = every.constituents.pf[window]
    keep = ak.local_index(fat, axis=1) % 2 == 0  # second jets of an event lose all their constituents
    emptied = cons[ak.local_index(cons, axis=2) < ak.where(keep, 10_000, 0)]
    assert ak.any(ak.num(fat, axis=1) == 0) and ak.any(~keep)
    for model in MODELS:
        tagger = JetTagger(model)
        before, after = tagger(fat, cons), tagger(fat, emptied)
        assert ak.to_list(ak.num(after, axis=1)) == ak.to_list(ak.num(fat, axis=1))
        assert ak.all(ak.num(emptied[~keep], axis=2) == 0)
        assert np.array_equal(ak.to_numpy(ak.flatten(after[keep])), ak.to_numpy(ak.flatten(before[keep])))
        assert np.isfinite(ak.to_numpy(ak.flatten(after))).all()


def test_scorer_level_errors_name_the_culprit(shipped_artefacts):
    x = {"input__0": np.zeros((3, 20), np.float32)}
    with pytest.raises(hepinfer.ModelNotFound, match="unknown model 'bdt2'.*known models"):
        hepinfer.Scorer("bdt2")
    with pytest.raises(hepinfer.InputMismatch, match=r"'input__0'.*shape"):
        hepinfer.Scorer("bdt")({"input__0": np.zeros((3, 19), np.float32)})
    with pytest.raises(hepinfer.ConfigError, match="(?i)malformed Triton URL.*port"):
        hepinfer.Scorer("bdt", mode="remote", url="grpc://127.0.0.1:99999")
    assert hepinfer.Scorer("bdt")(x)["output__0"].shape == (3, 2)
