"""Which addresses narrator may reach besides the TTS endpoint itself.

The service hands out audio links, and web pages (URL inputs) redirect: either could
point narrator at the machine's own services (``127.0.0.1:...``), the cloud metadata
address (``169.254.169.254``) or the local network. So a link or URL whose host is, or
resolves to, a loopback, link-local, private or otherwise non-public address is refused,
at every redirect hop, unless its host is the endpoint's own host (the emulator on
loopback hands out links to itself) or the user allowed it (``--allow-host``,
``--allow-private-network``). Redirects are followed here, one hop at a time, never by
aiohttp on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass

import aiohttp
from yarl import URL

from ..errors import AddressRefused

__all__ = ["MAX_REDIRECTS", "NetPolicy", "get"]


MAX_REDIRECTS = 10
_REDIRECTS = (301, 302, 303, 307, 308)


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 scope id is not part of it
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True, slots=True)
class NetPolicy:
    """Hosts reachable though not public (``allowed``, lower case), or everything."""

    allowed: frozenset[str] = frozenset()
    allow_private: bool = False

    @classmethod
    def make(
        cls,
        *,
        endpoint: str | None = None,
        hosts: Collection[str] = (),
        allow_private: bool = False,
    ) -> NetPolicy:
        allowed = {h.lower().strip("[]") for h in hosts}
        if endpoint:
            host = URL(endpoint).host
            if host:
                allowed.add(host.lower())
        return cls(frozenset(allowed), allow_private)

    async def check(self, url: URL) -> None:
        """Raise :class:`AddressRefused` unless ``url`` is http(s) and its host may be reached."""
        if url.scheme not in ("http", "https"):
            raise AddressRefused(f"refusing a non-HTTP link ({url.scheme or 'no scheme'}:)")
        host = (url.host or "").lower()
        if not host:
            raise AddressRefused("refusing a link without a host")
        if self.allow_private or host in self.allowed:
            return
        try:
            addresses = [str(ipaddress.ip_address(host))]
        except ValueError:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, url.port, type=socket.SOCK_STREAM
                )
            except OSError:
                return  # it cannot be reached at all; the request says so in its own words
            addresses = [str(info[4][0]) for info in infos]
        private = [a for a in addresses if not _public(a)]
        if private:
            raise AddressRefused(
                f"refusing {host}: it is a loopback, link-local or private address "
                f"({private[0]}); --allow-host {host} or --allow-private-network permits it"
            )


@contextlib.asynccontextmanager
async def get(
    session: aiohttp.ClientSession, url: str, *, policy: NetPolicy, **kwargs: object
) -> AsyncIterator[aiohttp.ClientResponse]:
    """``session.get(url)``, following redirects itself and checking every hop."""
    current = URL(url)
    for _ in range(MAX_REDIRECTS + 1):
        await policy.check(current)
        async with session.get(current, allow_redirects=False, **kwargs) as response:  # type: ignore[arg-type]
            location = response.headers.get("Location")
            if response.status in _REDIRECTS and location:
                current = response.url.join(URL(location))
                continue
            yield response
            return
    raise AddressRefused(f"more than {MAX_REDIRECTS} redirects")
