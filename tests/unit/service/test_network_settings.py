"""The operator's network policy: read at the edge, validated whole, and the only way the service
builds an endpoint it connects to."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from cachemigrate.cli.service_cmds import service_settings as cli_settings
from cachemigrate.errors import ConfigError
from cachemigrate.service.app import create_app
from cachemigrate.service.endpoints import endpoint_of
from cachemigrate.service.settings import DEFAULT_ALLOWED_NETWORKS, Settings

SERVICE = Path(__file__).resolve().parents[3] / "src" / "cachemigrate" / "service"


def test_the_default_is_this_host_only() -> None:
    policy = Settings().network_policy("any")
    assert Settings().allowed_networks == list(DEFAULT_ALLOWED_NETWORKS)
    assert policy.allows("127.0.0.1") and policy.allows("127.9.9.9") and policy.allows("::1")
    for outside in ("10.0.0.1", "192.168.1.1", "172.16.0.1", "169.254.169.254", "0.0.0.0", "8.8.8.8"):
        assert not policy.allows(outside), outside


@pytest.mark.parametrize(
    ("value", "networks"),
    [
        ("10.0.0.0/8,fd00::/8", ["10.0.0.0/8", "fd00::/8"]),
        (" 10.0.0.0/8 , 192.168.0.0/16 ", ["10.0.0.0/8", "192.168.0.0/16"]),
        ('["10.0.0.0/8", "127.0.0.1/32"]', ["10.0.0.0/8", "127.0.0.1/32"]),
        ("", []),  # said explicitly: nothing is reachable
    ],
)
def test_allowed_networks_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, networks: list[str]
) -> None:
    monkeypatch.setenv("CACHEMIGRATE_ALLOWED_NETWORKS", value)
    settings = cli_settings()
    assert settings.allowed_networks == networks
    assert not settings.network_policy("p").allows("11.0.0.1")


def test_project_networks_narrow_within_the_service_s(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHEMIGRATE_ALLOWED_NETWORKS", "10.0.0.0/8")
    monkeypatch.setenv("CACHEMIGRATE_PROJECT_NETWORKS", '{"narrow": ["10.1.0.0/16"]}')
    settings = cli_settings()
    assert settings.network_policy("narrow").allows("10.1.2.3")
    assert not settings.network_policy("narrow").allows("10.2.0.1")
    assert settings.network_policy("other").allows("10.2.0.1")


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"CACHEMIGRATE_ALLOWED_NETWORKS": "10.0.0.1/8"}, "CACHEMIGRATE_ALLOWED_NETWORKS"),
        ({"CACHEMIGRATE_ALLOWED_NETWORKS": "10.0.0.0/8,cache.example"}, "CACHEMIGRATE_ALLOWED_NETWORKS"),
        ({"CACHEMIGRATE_ALLOWED_NETWORKS": "[10.0.0.0/8"}, "CACHEMIGRATE_ALLOWED_NETWORKS"),
        ({"CACHEMIGRATE_ALLOWED_NETWORKS": "10.0.0.0/8", "CACHEMIGRATE_PROJECT_NETWORKS":
          '{"p": ["192.168.0.0/16"]}'}, "CACHEMIGRATE_PROJECT_NETWORKS"),
        ({"CACHEMIGRATE_PROJECT_NETWORKS": '{"p": ["127.0.0.1"]'}, "settings"),
        ({"CACHEMIGRATE_PROJECT_NETWORKS": '{"p": ["x"]}'}, "CACHEMIGRATE_PROJECT_NETWORKS"),
    ],
)
def test_a_bad_policy_is_one_line_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], named: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        cli_settings()
    assert named in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_every_service_endpoint_carries_the_project_s_policy() -> None:
    settings = Settings(allowed_networks=["10.0.0.0/8"], project_networks={"p": ["10.1.0.0/16"]})
    ep = endpoint_of({"addrs": "10.1.0.5:6379"}, None, network=settings.network_policy("p"))
    assert ep.network == settings.network_policy("p") and "network" not in repr(ep)
    # Only endpoints.py makes Endpoints in service/, and endpoint_of takes the policy by force.
    makers = []
    for path in sorted(SERVICE.rglob("*.py")):
        if path.name == "endpoints.py":
            continue
        text = path.read_text(encoding="utf-8")
        for found in re.findall(r"Endpoint\.from_\w+\(|\bEndpoint\(|replace\(\s*\w*endpoint", text):
            makers.append(f"{path.relative_to(SERVICE)}: {found}")
    assert not makers, makers
    text = (SERVICE / "endpoints.py").read_text(encoding="utf-8")
    assert "*, network: NetworkPolicy)" in text


def test_listening_beyond_loopback_while_allowing_it_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = Fernet.generate_key().decode()
    caplog.set_level(logging.WARNING, logger="cachemigrate.service.app")
    create_app(Settings(host="127.0.0.1", data_dir=tmp_path / "a", secret_key=key))
    create_app(Settings(host="0.0.0.0", data_dir=tmp_path / "b", secret_key=key,
                        allowed_networks=["10.0.0.0/8"]))
    assert "include loopback" not in caplog.text
    create_app(Settings(host="0.0.0.0", data_dir=tmp_path / "c", secret_key=key))
    assert "include loopback" in caplog.text
