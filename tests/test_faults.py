"""The fault tools the several-machines tests stand on: a proxy that cuts a real service
off, and a private Redis that restarts with its data."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import redis

from tests.faults import LoopbackProxy, free_port, private_redis


def _client(url: str) -> redis.Redis:
    # No retries, short timeouts: a cut must show as an error at once, not be papered over.
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, retry=None)


def test_a_cut_closes_live_connections_refuses_new_ones_and_restore_reopens(
    tmp_path: Path,
) -> None:
    with private_redis(tmp_path) as server, LoopbackProxy.in_front_of(server.url) as proxy:
        assert proxy.url == f"redis://127.0.0.1:{proxy.port}/0" != server.url
        live = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        live.sendall(b"PING\r\n")
        assert live.recv(64) == b"+PONG\r\n"
        client = _client(proxy.url)
        client.set("k", "v")

        proxy.cut()
        try:
            assert live.recv(64) == b""  # closed under it
        except ConnectionResetError:
            pass
        live.close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", proxy.port), timeout=2).close()
        with pytest.raises(redis.ConnectionError):
            client.get("k")
        assert server.running  # the service itself never stopped

        proxy.restore()
        assert client.get("k") == b"v"  # same port, so the same URL works again
        assert proxy.connections >= 2
        client.close()


def test_a_proxy_in_front_of_nothing_refuses_like_the_service_would() -> None:
    with LoopbackProxy("127.0.0.1", free_port()) as proxy:
        sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        try:
            assert sock.recv(64) == b""
        except ConnectionResetError:
            pass
        sock.close()


def test_a_proxy_moves_an_s3_endpoint_and_keeps_the_rest_of_the_url() -> None:
    url = "s3://narrator/test/x/?endpoint=http://127.0.0.1:8340&region=eu"
    with LoopbackProxy.in_front_of(url) as proxy:
        assert proxy.target == ("127.0.0.1", 8340)
        assert proxy.url == (
            f"s3://narrator/test/x/?endpoint=http://127.0.0.1:{proxy.port}&region=eu"
        )
    postgres = "postgresql://narrator@127.0.0.1:5440/postgres"
    with LoopbackProxy.in_front_of(postgres) as proxy:
        assert proxy.url == f"postgresql://narrator@127.0.0.1:{proxy.port}/postgres"


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_a_private_redis_restarts_on_its_port_with_its_data(tmp_path: Path, kill: bool) -> None:
    with private_redis(tmp_path) as server:
        url = server.url
        client = _client(url)
        client.rpush("queue", "job-1", "job-2")
        server.restart(kill=kill)
        assert server.url == url
        assert client.lrange("queue", 0, -1) == [b"job-1", b"job-2"]
        client.close()
    assert not server.running
