"""How a batch sent to a Triton server is cut into requests (pure functions).

A batch of ``rows`` rows goes out in equal pieces (sizes differ by one row at most; never padded):

* no piece is above the model's ``max_batch_size``, above ``max_request_bytes``, or above the
  largest ``preferred_batch_size`` of the model's dynamic batcher when the server declares one
  (the batch its configuration names as best);
* there are ``max(instances, 2)`` pieces while each keeps :data:`MIN_PIECE_BYTES`: the model's
  instances work on one call's pieces side by side (with one instance, the next piece travels while
  the first is computed);
* once there are as many pieces as instances, their number is a multiple of the instances, so
  that each instance gets the same share of the batch.  Not more: pieces that wait together are
  merged by the dynamic batcher into one execution for whichever instance frees first (measured in
  the performance guide, "How a batch is cut").

``instances`` and the preferred sizes come from the model's configuration on the server
(:func:`model_instances`, :func:`preferred_batch_sizes`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

MIN_PIECE_BYTES = 128 * 1024  # a piece below this is not worth its own request


def model_instances(config: Mapping) -> int:
    """Instances of a model, from its Triton model configuration (a JSON dict): the ``count`` of each
    ``instance_group`` (1 when unset), times its GPUs for a ``KIND_GPU`` group that lists them."""
    groups = config.get("instance_group", config.get("instanceGroup")) or []
    total = 0
    for group in groups:
        count = int(group.get("count", 1) or 1)
        gpus = group.get("gpus") or []
        total += count * (len(gpus) if str(group.get("kind", "")) == "KIND_GPU" and gpus else 1)
    return max(total, 1)


def preferred_batch_sizes(config: Mapping) -> tuple[int, ...]:
    """The ``preferred_batch_size`` list of the model's dynamic batcher; empty when none is declared."""
    batching = config.get("dynamic_batching", config.get("dynamicBatching")) or {}
    sizes = batching.get("preferred_batch_size", batching.get("preferredBatchSize")) or []
    return tuple(int(s) for s in sizes if int(s) > 0)


def piece_count(
    rows: int,
    row_bytes: int,
    *,
    max_batch_size: int,
    max_request_bytes: int,
    instances: int = 1,
    preferred: tuple[int, ...] = (),
) -> int:
    """How many pieces a batch of ``rows`` rows of ``row_bytes`` bytes each is sent in (see the module
    doc); a model without a batch dimension (``max_batch_size`` 0) takes its tensors in one request."""
    if rows <= 0:
        return 0
    if max_batch_size <= 0:
        return 1
    row_bytes = max(1, row_bytes)
    cap = min(max(1, max_request_bytes // row_bytes), max_batch_size)
    if preferred:
        cap = min(cap, max(preferred))
    count = math.ceil(rows / cap)
    instances = max(1, instances)
    worth = rows * row_bytes // MIN_PIECE_BYTES  # the most pieces that each stay worth a request
    count = max(count, min(max(instances, 2), worth))
    if instances > 1 and count >= instances:
        count = math.ceil(count / instances) * instances
    return min(count, rows)


def piece_rows(rows: int, row_bytes: int, **limits) -> int:
    """The rows of the largest piece: :func:`piece_count`'s pieces, balanced."""
    count = piece_count(rows, row_bytes, **limits)
    return math.ceil(rows / count) if count else 0


def balanced_slices(rows: int, step: int) -> list[slice]:
    """Slices covering ``range(rows)`` in the fewest pieces of at most ``step`` rows, their sizes
    equal to one row."""
    if rows <= 0:
        return []
    count = math.ceil(rows / max(1, step))
    base, extra = divmod(rows, count)
    out, start = [], 0
    for i in range(count):
        stop = start + base + (1 if i < extra else 0)
        out.append(slice(start, stop))
        start = stop
    return out
