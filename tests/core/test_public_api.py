import hepinfer


def test_public_api_snapshot():
    assert sorted(hepinfer.__all__) == sorted(
        [
            "ArtefactMissing",
            "ConfigError",
            "HepinferError",
            "InferenceConfig",
            "InferenceTimeout",
            "InputMismatch",
            "ModelNotFound",
            "ModelSpec",
            "SPECS",
            "Scorer",
            "ServerError",
            "Session",
            "ServerUnavailable",
            "TensorSpec",
            "TritonUrl",
            "__version__",
            "get_spec",
            "register_model",
            "serve",
        ]
    )
    for name in hepinfer.__all__:
        assert hasattr(hepinfer, name)


def test_one_exception_base():
    for name in (
        "ArtefactMissing",
        "ConfigError",
        "InferenceTimeout",
        "InputMismatch",
        "ModelNotFound",
        "ServerError",
        "ServerUnavailable",
    ):
        assert issubclass(getattr(hepinfer, name), hepinfer.HepinferError)


def test_import_is_light():
    import subprocess
    import sys

    heavy = ("torch", "onnxruntime", "tritonclient", "xgboost")
    code = f"import hepinfer, sys; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.check_output([sys.executable, "-c", code], text=True).strip()
    assert out == "[]"


def test_command_line_parser_is_light():
    """Every ``hepinfer`` command builds the whole parser: it must not need the analysis, build or
    server extras (a client-only install runs ``hepinfer serve --help``)."""
    import subprocess
    import sys

    heavy = ("awkward", "coffea", "dask", "distributed", "matplotlib", "onnxruntime", "torch", "tritonclient", "uproot")
    code = f"import sys; import hepinfer.cli as c; c.parser(); print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.check_output([sys.executable, "-c", code], text=True).strip()
    assert out == "[]"
