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
