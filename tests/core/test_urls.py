import pytest
from hypothesis import given
from hypothesis import strategies as st

from hepinfer import ConfigError, TritonUrl


@pytest.mark.parametrize(
    "text, protocol, host, port, ssl, model, version",
    [
        ("grpc://127.0.0.1:8001", "grpc", "127.0.0.1", 8001, False, None, None),
        ("grpc://example.org", "grpc", "example.org", 8001, False, None, None),
        ("grpcs://example.org:443", "grpc", "example.org", 443, True, None, None),
        ("http://localhost:8000", "http", "localhost", 8000, False, None, None),
        ("https://triton.site", "http", "triton.site", 8000, True, None, None),
        ("triton+grpc://10.0.0.1:8001/particlenet/1", "grpc", "10.0.0.1", 8001, False, "particlenet", "1"),
        ("triton+grpc://host:9000/bdt", "grpc", "host", 9000, False, "bdt", None),
        ("localhost:1234", "grpc", "localhost", 1234, False, None, None),
        ("grpc://[::1]:8001", "grpc", "::1", 8001, False, None, None),
    ],
)
def test_parse_accepted_forms(text, protocol, host, port, ssl, model, version):
    url = TritonUrl.parse(text)
    assert (url.protocol, url.host, url.port, url.ssl, url.model, url.version) == (
        protocol,
        host,
        port,
        ssl,
        model,
        version,
    )


def test_loopback_and_address():
    assert TritonUrl.parse("grpc://127.0.0.1:1").is_loopback
    assert TritonUrl.parse("grpc://localhost:1").is_loopback
    assert TritonUrl.parse("grpc://[::1]:5").address == "[::1]:5"
    assert not TritonUrl.parse("grpc://triton.cern.ch:1").is_loopback


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "non-empty"),
        ("ftp://host:1", "unsupported scheme 'ftp'"),
        ("grpc://host:notaport", "malformed"),
        ("grpc://host:99999", "malformed"),
        ("grpc://:8001", "no host"),
        ("triton+grpc://h:1/m/v/extra", "too many path parts"),
        ("triton+grpc://h:1/m/latest", "must be an integer"),
        ("grpc://user:pw@h:1", "user info"),
    ],
)
def test_malformed_urls_are_named(text, fragment):
    with pytest.raises(ConfigError, match=fragment) as info:
        TritonUrl.parse(text)
    if text:
        assert repr(text) in str(info.value) or text.split("://")[0] in str(info.value)


hosts = st.one_of(
    st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,3}", fullmatch=True),
    st.ip_addresses(v=4).map(str),
)


@given(
    scheme=st.sampled_from(["grpc", "grpcs", "http", "https", "triton+grpc"]),
    host=hosts,
    port=st.integers(1, 65535),
    model=st.none() | st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True),
    version=st.none() | st.integers(1, 99),
)
def test_round_trip(scheme, host, port, model, version):
    path = "" if model is None else f"/{model}" + ("" if version is None else f"/{version}")
    url = TritonUrl.parse(f"{scheme}://{host}:{port}{path}")
    assert (url.host, url.port, url.model) == (host, port, model)
    assert url.version == (None if model is None or version is None else str(version))
    assert TritonUrl.parse(str(url)) == url


@given(st.text(max_size=40))
def test_garbage_raises_config_error_or_parses(text):
    try:
        url = TritonUrl.parse(text)
    except ConfigError:
        return
    assert url.host and 0 < url.port < 65536
