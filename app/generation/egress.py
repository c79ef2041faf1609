"""Which addresses model-server requests may reach: checked on the URL when it is saved, and on every address a
connection is about to use (a name may resolve elsewhere by then), so the app cannot be pointed at itself, the
machine's private network or a cloud metadata service through the generation settings."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Any

import anyio
import httpcore
import httpx

IPAddress = IPv4Address | IPv6Address

SETTING = "PREFSTUDIO_ALLOW_PRIVATE_MODEL_SERVERS"
# Cloud metadata services outside the link-local range (AWS over IPv6, Alibaba Cloud), and their names.
METADATA = {ip_address("fd00:ec2::254"), ip_address("100.100.100.200")}
METADATA_NAMES = ("metadata", "metadata.google.internal", "metadata.goog", "instance-data")
# IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64), judged as that address.
NAT64 = ip_network("64:ff9b::/96")
_PART = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*")


class AddressRefused(Exception):
    """A model server at an address this installation does not connect to (never retried)."""


def numeric_ipv4(host: str) -> IPv4Address | None:
    """The address of a numeric IPv4 host in any form the C library accepts (``127.1``, ``0x7f000001``,
    ``2130706433``, octal parts), or None when the host is a name."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_PART.fullmatch(p) for p in parts):
        return None
    values = [int(p[2:] or "0", 16) if p[:2].lower() == "0x" else int(p, 8 if p[0] == "0" else 10) for p in parts]
    *leading, last = values
    if any(v > 255 for v in leading) or last >= 256 ** (5 - len(parts)):
        return None
    number = last
    for i, v in enumerate(leading):
        number += v << (8 * (3 - i))
    return IPv4Address(number)


def _embedded_ipv4(address: IPAddress) -> IPAddress:
    if isinstance(address, IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in NAT64:
            return IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour is not None:
            return address.sixtofour
    return address


def address_problem(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why a model server must not be reached at ``address`` (None: it may)."""
    address = _embedded_ipv4(address)
    if (
        address in METADATA
        or address.is_link_local
        or address.is_unspecified
        or address.is_multicast
        or (address.is_reserved and not address.is_loopback)  # ::/8 holds ::1
        or address == IPv4Address("255.255.255.255")
    ):
        return f"{address} is a link-local, metadata or reserved address, never a model server"
    if not allow_private and (address.is_loopback or address.is_private or not address.is_global):
        return f"{address} is a loopback or private address; set {SETTING}=true to use model servers there"
    return None


def host_problem(host: str, *, allow_private: bool) -> str | None:
    """The same check on a URL's host as written: addresses and well-known names (other names are checked when a
    connection resolves them)."""
    name = host.strip("[]").lower().rstrip(".")
    if name in METADATA_NAMES:
        return f"{name} is a cloud metadata service, never a model server"
    if name == "localhost" or name.endswith(".localhost"):
        return None if allow_private else f"{name} is this machine; set {SETTING}=true to use model servers there"
    try:
        address: IPAddress = ip_address(name)
    except ValueError:
        numeric = numeric_ipv4(name)
        if numeric is None:
            return None
        address = numeric
    return address_problem(address, allow_private=allow_private)


def _vetted(host: str, infos: Iterable[Any], *, allow_private: bool) -> list[str]:
    addresses = list(dict.fromkeys(str(info[4][0]).split("%", 1)[0] for info in infos))
    if not addresses:
        raise AddressRefused(f"{host} resolves to no address")
    for text in addresses:
        problem = address_problem(ip_address(text), allow_private=allow_private)
        if problem:  # one bad address condemns the name: which one is used is not ours to choose
            raise AddressRefused(f"refused to connect to {host}: {problem}")
    return addresses


class _GuardedBackend(httpcore.NetworkBackend):
    """Resolves the host itself, checks every address, and connects to a checked one (no second lookup)."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private
        self.inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore.ConnectError(f"{host}: {exc}") from exc
        last: Exception | None = None
        for address in _vetted(host, infos, allow_private=self.allow_private):
            try:
                return self.inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise AddressRefused("model servers are reached over TCP only")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class _AsyncGuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        last: Exception | None = None
        for address in await self._addresses(host, port):
            try:
                return await self.inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last = exc
        assert last is not None
        raise last

    async def _addresses(self, host: str, port: int) -> list[str]:
        """The checked addresses of ``host``: an address as it is (no lookup, which would cost a worker thread per
        connection), a name resolved."""
        try:
            literal = ip_address(host.strip("[]"))
        except ValueError:
            try:
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise httpcore.ConnectError(f"{host}: {exc}") from exc
            return _vetted(host, infos, allow_private=self.allow_private)
        problem = address_problem(literal, allow_private=self.allow_private)
        if problem:
            raise AddressRefused(f"refused to connect to {host}: {problem}")
        return [str(literal)]

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("model servers are reached over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def _pool_options(limits: httpx.Limits) -> dict[str, Any]:
    return {
        "ssl_context": httpx.create_ssl_context(),
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
    }


def guarded_client(*, allow_private: bool, timeout: float, limits: httpx.Limits | None = None) -> httpx.Client:
    """A client for model servers: no proxies from the environment, no redirects, every address checked."""
    limits = limits or httpx.Limits()
    transport = httpx.HTTPTransport(limits=limits, trust_env=False)
    # httpx builds its httpcore pool without a way to choose the network backend; this one swaps it in.
    transport._pool = httpcore.ConnectionPool(
        network_backend=_GuardedBackend(allow_private=allow_private), **_pool_options(limits)
    )
    return httpx.Client(transport=transport, timeout=timeout, trust_env=False, follow_redirects=False)


# A job's client: as many connections as it has requests in flight, and every one kept for the next request (the
# default keeps 20: at 64 in flight most requests would open a new connection).
JOB_LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=None, keepalive_expiry=30.0)


def guarded_async_client(*, allow_private: bool, limits: httpx.Limits | None = None) -> httpx.AsyncClient:
    limits = limits or httpx.Limits()
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    transport._pool = httpcore.AsyncConnectionPool(
        network_backend=_AsyncGuardedBackend(allow_private=allow_private), **_pool_options(limits)
    )
    return httpx.AsyncClient(transport=transport, trust_env=False, follow_redirects=False)
