"""gRPC over TLS between hepinfer and the real tritonserver, with a certificate this test makes."""

import numpy as np
import pytest

import hepinfer
from hepinfer import Scorer, ServerUnavailable
from hepinfer.models.toy import toy_inputs

pytestmark = [pytest.mark.triton, pytest.mark.slow]


def test_grpc_over_tls(tmp_path, self_signed, artefacts):
    cert, key = self_signed(tmp_path)
    x = toy_inputs("bdt", 20, seed=13)
    want = Scorer("bdt")(x)["output__0"]
    with hepinfer.serve(["bdt"], tls_cert=cert, tls_key=key) as server:
        assert server.url.startswith("grpcs://")
        got = Scorer("bdt", mode="remote", url=server.url, root_certificates=str(cert))(x)["output__0"]
        assert np.abs(got - want).max() <= 1e-5
        plain = server.url.replace("grpcs://", "grpc://")
        with pytest.raises(ServerUnavailable, match="cannot reach"):  # plaintext client, TLS server
            Scorer("bdt", mode="remote", url=plain, timeout_s=5, session_timeout_s=1)(x)
        with pytest.raises(ServerUnavailable):  # TLS without the right CA: the handshake fails
            Scorer("bdt", mode="remote", url=server.url, timeout_s=5)(x)
