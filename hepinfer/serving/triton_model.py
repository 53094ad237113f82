"""Triton python-backend model, copied into the embedded repository as ``<model>/1/model.py``.

It runs inside tritonserver's python stub (the server's own environment, numpy<2), not in the
analysis process.  It evaluates the model with ``hepinfer_engines.py`` (a copy of
hepinfer/runtime/engines.py placed beside it), so the embedded server runs exactly the code of the
local runtime.  Requests gathered by the dynamic batcher are concatenated into one engine call and
split back; a failure answers every request of the batch with the error text.

The torch engine's tensors pass by DLPack both ways (``to_dlpack`` / ``Tensor.from_dlpack``): no
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
        self.torch = params["engine"] == "torch"
        options = {}
        if self.torch:
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
                return torch.from_dlpack(pb_utils.get_input_tensor_by_name(r, n).to_dlpack())

            def run(merged):
                return {n: t.cpu().contiguous() for n, t in self.engine.run_torch(merged).items()}

            def tensor(n, part):
                return pb_utils.Tensor.from_dlpack(n, to_dlpack(part.contiguous()))

            return self._answer(requests, read, torch.cat, run, tensor)

        def read(r, n):
            return pb_utils.get_input_tensor_by_name(r, n).as_numpy()

        def tensor(n, part):
            return pb_utils.Tensor(n, np.ascontiguousarray(part))

        return self._answer(requests, read, np.concatenate, self.engine.run, tensor)

    def _answer(self, requests, read, concatenate, run, tensor):
        """Read every request's inputs, run them as one batch, split the outputs back per request;
        an error answers every request of the batch with its text."""
        try:
            batches = [{n: read(r, n) for n in self.input_names} for r in requests]
            sizes = [len(b[self.input_names[0]]) for b in batches]
            merged = (
                batches[0] if len(batches) == 1 else {n: concatenate([b[n] for b in batches]) for n in self.input_names}
            )
            out = run(merged)
        except Exception as err:  # noqa: BLE001 - answer each request instead of crashing the stub
            message = f"{type(err).__name__}: {err}"
            return [pb_utils.InferenceResponse(error=pb_utils.TritonError(message)) for _ in requests]
        responses = []
        start = 0
        for size in sizes:
            tensors = [tensor(n, out[n][start : start + size]) for n in self.output_names]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += size
        return responses
