"""How a batch is cut into requests (hepinfer.runtime.pieces): the pure rule, and a real server whose
repository declares two instances and a preferred batch size."""

import itertools
import math
import time

import numpy as np
import pytest

import hepinfer
from hepinfer import InferenceConfig, Scorer
from hepinfer.models import get_spec
from hepinfer.models.toy import toy_inputs
from hepinfer.runtime import split_rows
from hepinfer.runtime.pieces import (
    MIN_PIECE_BYTES,
    balanced_slices,
    model_instances,
    piece_count,
    piece_rows,
    preferred_batch_sizes,
)

MIB = 1024 * 1024


def sizes(slices):
    return [s.stop - s.start for s in slices]


@pytest.mark.parametrize("rows, step", [(1, 1), (10, 3), (282, 256), (282, 141), (1000, 7), (5, 100)])
def test_balanced_slices_cover_every_row_once_in_the_fewest_equal_pieces(rows, step):
    slices = balanced_slices(rows, step)
    assert list(itertools.chain.from_iterable(range(s.start, s.stop) for s in slices)) == list(range(rows))
    assert len(slices) == math.ceil(rows / step)
    assert max(sizes(slices)) <= step and max(sizes(slices)) - min(sizes(slices)) <= 1
    assert list(split_rows(rows, step)) == slices  # the runtime's split is this one


def test_nothing_to_cut():
    assert balanced_slices(0, 8) == [] and list(split_rows(0, 8)) == []
    limits = dict(max_batch_size=256, max_request_bytes=4 * MIB)
    assert piece_count(0, 7200, **limits) == 0 and piece_rows(0, 7200, **limits) == 0


def test_a_chunk_just_above_the_max_batch_goes_in_one_piece_per_instance():
    """282 ParticleNet jets (7.2 kB a row), max batch 256, two instances: two pieces of 141, not
    256 + 26 (one instance busy, the other idle)."""
    limits = dict(max_batch_size=256, max_request_bytes=4 * MIB, instances=2)
    assert piece_count(282, 7200, **limits) == 2
    assert sizes(balanced_slices(282, piece_rows(282, 7200, **limits))) == [141, 141]


CASES = itertools.product(
    (1, 3, 40, 282, 1000, 9001),  # rows
    (80, 7200, 49152),  # bytes a row
    (1, 64, 256, 4096),  # max batch
    (64 * 1024, 4 * MIB),  # max request bytes
    (1, 2, 3, 4),  # instances
    ((), (32,), (64, 128)),  # preferred batch sizes
)


def test_every_piece_respects_the_limits():
    for case in CASES:
        rows, row_bytes, max_batch, request_bytes, instances, preferred = case
        limits = dict(max_batch_size=max_batch, max_request_bytes=request_bytes, instances=instances)
        count = piece_count(rows, row_bytes, **limits, preferred=preferred)
        pieces = sizes(balanced_slices(rows, piece_rows(rows, row_bytes, **limits, preferred=preferred)))
        assert sum(pieces) == rows and 1 <= count <= rows, case
        top = max(pieces)
        assert top <= max_batch and top - min(pieces) <= 1, case
        assert top <= max(1, request_bytes // row_bytes), case
        assert not preferred or top <= max(preferred), case
        if count >= instances > 1:
            assert count % instances == 0 or count == rows, case  # each instance the same share, rows permitting
        if rows * row_bytes >= 2 * MIN_PIECE_BYTES:
            assert count >= 2, case  # side by side (one instance: the next piece travels during the first)
            assert count >= min(instances, rows * row_bytes // MIN_PIECE_BYTES), case  # every instance busy
        elif rows <= min(max_batch, request_bytes // row_bytes, *(preferred or (rows,))):
            assert count == 1, case  # a small batch is not worth several requests


def test_a_model_without_batch_dimension_gets_one_request():
    assert piece_count(500, 7200, max_batch_size=0, max_request_bytes=1024, instances=4) == 1


def test_instances_and_preferred_sizes_from_a_model_config():
    assert model_instances({}) == 1
    assert model_instances({"instance_group": [{"kind": "KIND_CPU", "count": 2}]}) == 2
    assert model_instances({"instance_group": [{"kind": "KIND_CPU"}]}) == 1  # count unset: one
    gpus = {"instance_group": [{"kind": "KIND_GPU", "count": 2, "gpus": [0, 1, 2]}, {"kind": "KIND_CPU", "count": 1}]}
    assert model_instances(gpus) == 7  # 2 on each of 3 GPUs, and one on the CPU
    assert model_instances({"instanceGroup": [{"kind": "KIND_GPU", "count": 3}]}) == 3  # HTTP spelling, no GPU list
    assert preferred_batch_sizes({}) == () and preferred_batch_sizes({"dynamic_batching": {}}) == ()
    assert preferred_batch_sizes({"dynamic_batching": {"preferred_batch_size": [64, 128]}}) == (64, 128)


# -- against the real server ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def declared_server(artefacts, tmp_path_factory):
    """The BDT served from a repository that hepinfer's writer makes as a site's plan would: two
    instances and a preferred batch size of 512."""
    from hepinfer.serving.repository import RepositoryOptions, write_repository

    repo = write_repository(
        tmp_path_factory.mktemp("pieces") / "repo",
        RepositoryOptions(models=("bdt",), instances=2, preferred_batch_sizes={"bdt": (512,)}),
    )
    with hepinfer.serve(["bdt"], repository=repo) as srv:
        yield srv


def _statistics(server, model, rows=0):
    """(rows inferred, requests) as the server counts them, once they count ``rows`` rows (the python
    backend reports a request just after answering it), then read again."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(server.url.split("://")[1])

    def read():
        stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
        return int(stats.get("inference_count", 0)), int(stats["inference_stats"]["success"].get("count", 0))

    try:
        for _ in range(200):
            if read()[0] >= rows:
                break
            time.sleep(0.05)
        time.sleep(0.3)
        return read()
    finally:
        client.close()


@pytest.mark.triton
def test_the_server_declaration_sizes_the_requests(declared_server):
    from hepinfer.runtime.triton import TritonRuntime

    runtime = TritonRuntime(get_spec("bdt"), declared_server.url)
    meta = runtime.metadata()
    assert meta["instances"] == 2 and meta["preferred_batch_sizes"] == (512,)
    rows = 3000  # far below the max batch (4096), 240 kB: one request without the preferred size
    x = toy_inputs("bdt", rows, seed=21)
    limits = dict(max_batch_size=meta["max_batch_size"], max_request_bytes=4 * MIB, instances=2)
    row_bytes = x["input__0"][:1].nbytes
    expected = piece_count(rows, row_bytes, **limits, preferred=(512,))
    assert expected > piece_count(rows, row_bytes, **limits)  # the preferred size, not the max batch, decides
    count0, requests0 = _statistics(declared_server, "bdt")
    out = Scorer("bdt", config=InferenceConfig(mode="remote", url=declared_server.url))(x)
    count1, requests1 = _statistics(declared_server, "bdt", count0 + rows)
    assert requests1 - requests0 == expected and expected % 2 == 0
    assert count1 - count0 == rows  # every row once, none padded
    assert np.abs(out["output__0"] - Scorer("bdt")(x)["output__0"]).max() <= 1e-5
    runtime.close()
