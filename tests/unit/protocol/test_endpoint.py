"""Endpoint: the one address type, read from a URL (CLI) or a DCS addrs list (service)."""

from __future__ import annotations

import pytest

from cachemigrate.errors import ConfigError, MovedError, server_error
from cachemigrate.protocol.endpoint import Endpoint, decimal, split_addrs, split_host_port


def test_urls() -> None:
    ep = Endpoint.from_url("rediss://app:s%40cret@[::1]:7000/2?insecure")
    assert (ep.host, ep.port, ep.username, ep.password, ep.db) == ("::1", 7000, "app", "s@cret", 2)
    assert ep.tls and ep.tls_insecure
    assert Endpoint.from_url("redis://:pw@Cache.Example:6380").host == "cache.example"
    assert Endpoint.from_url("redis://pw@h").password == "pw"  # a lone credential is the password
    assert Endpoint.from_url("redis://h").port == 6379 and Endpoint.from_url("redis://[::1]").port == 6379
    assert "s3cret" not in repr(Endpoint.from_url("redis://u:s3cret@h:1"))
    assert str(Endpoint.from_url("rediss://u:s3cret@h:1/3")) == "rediss://u:***@h:1/3"


def test_tls_files_from_the_url_query() -> None:
    ep = Endpoint.from_url("rediss://h:1?ssl_ca_certs=/etc/ca%20dir/ca.pem&ssl_certfile=c.pem&ssl_keyfile=k.pem")
    assert (ep.tls_ca_file, ep.tls_cert_file, ep.tls_key_file) == ("/etc/ca dir/ca.pem", "c.pem", "k.pem")
    assert not ep.tls_insecure and ep.tls
    plain = Endpoint.from_url("rediss://h:1")
    assert (plain.tls_ca_file, plain.tls_cert_file, plain.tls_key_file) == (None, None, None)


@pytest.mark.parametrize(
    "url",
    [
        "http://h:1",
        "redis://:6379",
        "redis://h:0",
        "redis://h:65536",
        "redis://h:٦٣٧٩",  # Arabic-Indic digits: isdigit() says yes, and int() reads 6379
        "redis://h:1/²",  # superscript two: isdigit() says yes, and int() refuses it
        "redis://h:1/x",
        "redis://h:+1",
    ],
)
def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        Endpoint.from_url(url)


def test_bad_url_never_shows_its_password() -> None:
    with pytest.raises(ConfigError) as exc:
        Endpoint.from_url("redis://u:s3cret@h:99999")
    assert "s3cret" not in str(exc.value)


def test_dcs_addrs() -> None:
    assert split_addrs("10.0.0.1:6379, 10.0.0.2:6380") == [("10.0.0.1", 6379), ("10.0.0.2", 6380)]
    assert split_host_port("[::1]:7000") == ("::1", 7000)
    ep = Endpoint.from_addrs("10.0.0.1:6379,10.0.0.2:6380", username="app", password="pw", tls=True)
    assert (ep.host, ep.port, ep.username, ep.password, ep.tls, ep.tls_insecure) == (
        "10.0.0.1", 6379, "app", "pw", True, False
    )
    # Empty strings from a JSON body mean "none"; skipping verification needs TLS to mean anything.
    plain = Endpoint.from_addrs("h:1", username="", password="", tls_insecure=True)
    assert plain.username is None and plain.password is None and not plain.tls_insecure


@pytest.mark.parametrize(
    "addrs",
    ["nohost", ":6379", "h:0", "h:99999", "a@b:1", "h:x", "h:", "127.0.0.1:٦٣٧٩", "h:²", "::1:6379",
     "[h]:1", "a b:1", "h:1,", "h/x:1", "h:-1"],
)
def test_bad_addrs_are_config_errors(addrs: str) -> None:
    with pytest.raises(ConfigError):
        Endpoint.from_addrs(addrs)


def test_decimal_takes_ascii_digits_only() -> None:
    assert decimal("0") == 0 and decimal("0042") == 42
    for text in ("", "²", "٦", "1_0", " 1", "+1", "-1", "1.0"):
        assert decimal(text) is None


def test_redirections_read_ascii_digits_only() -> None:
    moved = server_error("MOVED 3999 127.0.0.1:6381")
    assert isinstance(moved, MovedError) and (moved.slot, moved.host, moved.port) == (3999, "127.0.0.1", 6381)
    odd = server_error("MOVED ٣ h:٦٣٧٩")
    assert isinstance(odd, MovedError) and (odd.slot, odd.port) == (-1, 0)
