"""The Phoenix fixture itself: healthy, reachable, and listening on loopback only."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

pytestmark = pytest.mark.integration


def test_phoenix_listens_on_loopback_only(phoenix):
    addresses = phoenix.listening_addresses()
    ports = {port for _, port in addresses}
    http_port = int(phoenix.base_url.rpartition(":")[2])
    grpc_port = int(phoenix.grpc_endpoint.rpartition(":")[2])
    assert {http_port, grpc_port} <= ports, addresses
    assert all(_is_loopback(ip) for ip, _ in addresses), addresses


def test_phoenix_unknown_project_times_out_with_a_clear_error(phoenix):
    from phoenix_server import PhoenixError

    with pytest.raises(PhoenixError, match="does not exist"):
        phoenix.spans("no-such-project", "0" * 32, timeout=0.5)


def test_phoenix_health(phoenix):
    assert httpx.get(f"{phoenix.base_url}/healthz", timeout=5).status_code == 200


def _is_loopback(ip: str) -> bool:
    """127.0.0.0/8, ::1, or an IPv4-mapped loopback (gRPC binds `[::ffff:127.0.0.1]`)."""
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)
