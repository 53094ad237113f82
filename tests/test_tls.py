"""gRPC over TLS between hepinfer and the real tritonserver, with a certificate this test makes."""

import datetime
import ipaddress

import numpy as np
import pytest

import hepinfer
from hepinfer import Scorer, ServerUnavailable
from hepinfer.models.toy import toy_inputs

pytestmark = [pytest.mark.triton, pytest.mark.slow]


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "server.pem", tmp_path / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_grpc_over_tls(tmp_path, artefacts):
    cert, key = _self_signed(tmp_path)
    x = toy_inputs("bdt", 20, seed=13)
    want = Scorer("bdt")(x)["output__0"]
    with hepinfer.serve(["bdt"], tls_cert=cert, tls_key=key) as server:
        assert server.url.startswith("grpcs://")
        got = Scorer("bdt", mode="remote", url=server.url, root_certificates=str(cert))(x)["output__0"]
        assert np.abs(got - want).max() <= 1e-5
        plain = server.url.replace("grpcs://", "grpc://")
        with pytest.raises(ServerUnavailable, match="cannot reach"):  # plaintext client, TLS server
            Scorer("bdt", mode="remote", url=plain, timeout_s=5)(x)
        with pytest.raises(ServerUnavailable):  # TLS without the right CA: the handshake fails
            Scorer("bdt", mode="remote", url=server.url, timeout_s=5)(x)
