"""Measure the memory one model takes per batch row, in the interpreter that serves it.

Run as a file by the server environment's python (numpy<2, onnxruntime, xgboost, torch), never
imported by hepinfer: it imports nothing of hepinfer but the engines module, loaded from the path
given in the request, so the device, the libraries and the engine code are the server's own::

    python measure_memory.py '<request JSON>'

The request names the engine module, the engine kind, the artefact, the tensors (per-row shape and
dtype of every input; output names and row bytes), device, precision, threads and two batch sizes
(``rows``, smaller first).  It prints one JSON line: ``per_row_bytes``, ``fixed_bytes``, ``measure``
and the raw peaks.

* ``device`` ``cuda:N``: the peak of ``torch.cuda.max_memory_allocated`` above the memory allocated
  once the engine is loaded and has run one row (weights, library workspaces), for each batch size;
  the CUDA context and the caching allocator's unused reserve are not counted.
* ``device`` ``cpu``: the peak resident memory of this process during each batch (``/proc/self/statm``
  sampled every millisecond by a thread) above the resident memory just before it.  The process
  maximum (``ru_maxrss``) is not used: a transient peak while the program loads can exceed every
  batch and hide them.

Memory per row is the slope between the two batch sizes, never below the bytes of one row's inputs
and outputs.  Fixed memory is what the instance holds before a batch plus the line's intercept:
weights on a GPU, the whole process (interpreter, libraries, weights) on a CPU.
"""

import importlib.util
import json
import resource
import sys

import numpy as np


def load_engines(path):
    spec = importlib.util.spec_from_file_location("hepinfer_engines", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_inputs(tensors, rows, seed=0):
    """Filled arrays (every page written, so it is resident) of each input's per-row shape, a
    variable dimension (-1) taken as 1."""
    rng = np.random.default_rng(seed)
    out = {}
    for t in tensors:
        shape = (rows, *[max(int(d), 1) for d in t["shape"]])
        dtype = np.dtype(t["dtype"])
        if dtype.kind == "b":
            out[t["name"]] = rng.random(shape) < 0.5
        elif dtype.kind in "iu":
            out[t["name"]] = rng.integers(0, 10, size=shape).astype(dtype)
        else:
            out[t["name"]] = rng.normal(0.0, 1.0, size=shape).astype(dtype)
    return out


def resident_bytes():
    """The resident memory of this process now."""
    # /proc, not psutil: psutil is not in the server environment (SERVER_REQUIREMENTS), and adding it rebuilds every one
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def peak_resident_during(call):
    """Run ``call()``; the largest resident memory seen while it ran, sampled every millisecond."""
    import threading

    peak = [resident_bytes()]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], resident_bytes())
            done.wait(0.001)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    try:
        call()
    finally:
        done.set()
        watcher.join()
    return max(peak[0], resident_bytes())


def measure(request):
    engines = load_engines(request["engines"])
    inputs = request["inputs"]
    names = [t["name"] for t in inputs]
    options = {}
    if request["kind"] == "torch":
        options = {"device": request["device"], "precision": request["precision"]}
    engine = engines.load_engine(
        request["kind"], request["artefact"], names, request["outputs"], int(request["threads"]), **options
    )
    small, large = (int(n) for n in request["rows"])
    batches = {n: make_inputs(inputs, n, seed=n) for n in (1, small, large)}
    if request["device"].startswith("cuda"):
        import torch

        device = torch.device(request["device"])

        def run(n):
            x = {k: torch.from_numpy(v).to(device) for k, v in batches[n].items()}
            engine.run_torch(x)
            del x
            torch.cuda.synchronize(device)

        run(1)
        baseline = torch.cuda.memory_allocated(device)
        peaks = {}
        for n in (small, large):
            torch.cuda.reset_peak_memory_stats(device)
            run(n)
            peaks[n] = torch.cuda.max_memory_allocated(device) - baseline
        measure_kind = "cuda_max_memory_allocated"
    else:
        engine.run(batches[1])
        baseline = resident_bytes()
        peaks = {}
        for n in (small, large):
            before = resident_bytes()
            peaks[n] = peak_resident_during(lambda n=n: engine.run(batches[n])) - before
        measure_kind = "peak_resident_memory"
    io_row = sum(v.nbytes for v in batches[1].values()) + int(request["output_row_bytes"])
    slope = (peaks[large] - peaks[small]) / (large - small)
    per_row = max(int(round(slope)), io_row)
    intercept = max(peaks[small] - per_row * small, 0)
    return {
        "per_row_bytes": per_row,
        "fixed_bytes": int(baseline + intercept),
        "measure": measure_kind,
        "baseline_bytes": int(baseline),
        "peaks": {str(n): int(p) for n, p in peaks.items()},
        "rows": [small, large],
    }


if __name__ == "__main__":
    print(json.dumps(measure(json.loads(sys.argv[1]))))
