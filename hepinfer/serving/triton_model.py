"""Triton python-backend model, copied into the embedded repository as ``<model>/1/model.py``.

It runs inside tritonserver's python stub (the server's own environment, numpy<2), not in the
analysis process.  It evaluates the model with ``hepinfer_engines.py`` (a copy of
hepinfer/runtime/engines.py placed beside it), so the embedded server runs exactly the code of the
local runtime.  Requests gathered by the dynamic batcher are concatenated into one engine call and
split back (requests whose shapes differ beyond the batch axis, and every request of a model with
``max_batch_size: 0``, run one by one); a failure answers every request of the batch with the error
text.  An optional input a request leaves out is left out of the engine's inputs; outputs are cast
to the dtypes the config declares.  The engines of models from a repository hepinfer did not write
(:mod:`hepinfer.serving.foreign`) take their keywords from the ``engine_options`` parameter (JSON).

The torch and TorchScript engines' tensors pass by DLPack both ways (``to_dlpack`` / ``Tensor.from_dlpack``): no
numpy array is made, so it works whatever numpy the server's interpreter has, and inputs go to the
engine's device (``cuda:<the instance's GPU>`` for a KIND_GPU instance) in one copy.  Outputs come
back to host memory as float32 before they are handed to Triton.
"""

import json
import os
import sys

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        here = os.path.join(args["model_repository"], args["model_version"])
        if here not in sys.path:
            sys.path.insert(0, here)
        from hepinfer_engines import load_engine

        self.input_names = [t["name"] for t in config["input"]]
        self.output_names = [t["name"] for t in config["output"]]
        self.output_dtypes = {
            t["name"]: pb_utils.TRITON_STRING_TO_NUMPY.get(t.get("data_type", "")) for t in config["output"]
        }
        self.batching = int(config.get("max_batch_size", 0)) > 0
        self.torch = params["engine"] in ("torch", "torchscript")
        options = json.loads(params.get("engine_options") or "{}")
        if params["engine"] == "torch":
            device = "cpu"
            if args.get("model_instance_kind") == "GPU" or params.get("device") == "cuda":
                device = f"cuda:{args.get('model_instance_device_id', '0')}"
            options = {
                "device": device,
                "precision": params.get("precision", "fp32"),
                "compiled": params.get("compiled") == "true",
                "max_rows": int(params.get("max_rows", "0")),
                "input_shapes": {t["name"]: [int(d) for d in t["dims"]] for t in config["input"]},
            }
        elif params["engine"] == "null":
            options = {"output_shapes": json.loads(params["output_shapes"])}
        self.engine = load_engine(
            params["engine"],
            os.path.join(here, params["artefact"]),
            self.input_names,
            self.output_names,
            int(params.get("threads", "1")),
            **options,
        )
        if getattr(self.engine, "compile_seconds", None) is not None:
            pb_utils.Logger.log_info(
                f"hepinfer: {args['model_name']} compiled and warmed up in {self.engine.compile_seconds:.1f} s"
            )

    def execute(self, requests):
        if self.torch:
            import torch
            from torch.utils.dlpack import to_dlpack

            def read(r, n):
                t = pb_utils.get_input_tensor_by_name(r, n)
                return None if t is None else torch.from_dlpack(t.to_dlpack())

            def run(merged):
                return {n: t.cpu().contiguous() for n, t in self.engine.run_torch(merged).items()}

            def tensor(n, part):
                return pb_utils.Tensor.from_dlpack(n, to_dlpack(part.contiguous()))

            return self._answer(requests, read, torch.cat, run, tensor)

        def read(r, n):
            t = pb_utils.get_input_tensor_by_name(r, n)
            return None if t is None else t.as_numpy()

        def tensor(n, part):
            dtype = self.output_dtypes.get(n)
            return pb_utils.Tensor(n, np.ascontiguousarray(part if dtype is None else part.astype(dtype, copy=False)))

        return self._answer(requests, read, np.concatenate, self.engine.run, tensor)

    def _answer(self, requests, read, concatenate, run, tensor):
        """Read every request's inputs, run those that batch together as one batch and split the
        outputs back per request; an error answers every request of its batch with its text."""
        try:
            batches = [{n: x for n in self.input_names if (x := read(r, n)) is not None} for r in requests]
        except Exception as err:  # noqa: BLE001 - answer each request instead of crashing the stub
            return [self._error(err) for _ in requests]
        groups = [list(range(len(requests)))]
        if len(requests) > 1 and not (self.batching and len({self._shapes(b) for b in batches}) == 1):
            groups = [[i] for i in range(len(requests))]  # cannot be concatenated: one by one
        responses = [None] * len(requests)
        for group in groups:
            try:
                parts = [batches[i] for i in group]
                merged = parts[0] if len(parts) == 1 else {n: concatenate([b[n] for b in parts]) for n in parts[0]}
                out = run(merged)
            except Exception as err:  # noqa: BLE001 - answer each request instead of crashing the stub
                for i in group:
                    responses[i] = self._error(err)
                continue
            if len(group) == 1:
                responses[group[0]] = pb_utils.InferenceResponse(
                    output_tensors=[tensor(n, out[n]) for n in self.output_names]
                )
                continue
            start = 0
            for i in group:
                size = len(next(iter(batches[i].values())))
                tensors = [tensor(n, out[n][start : start + size]) for n in self.output_names]
                responses[i] = pb_utils.InferenceResponse(output_tensors=tensors)
                start += size
        return responses

    @staticmethod
    def _shapes(batch):
        """The names and per-row shapes of one request's inputs (requests batch when they agree)."""
        return tuple((n, tuple(x.shape[1:])) for n, x in batch.items())

    @staticmethod
    def _error(err):
        return pb_utils.InferenceResponse(error=pb_utils.TritonError(f"{type(err).__name__}: {err}"))
