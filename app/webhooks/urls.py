"""Which URLs webhooks may be sent to: checked when a webhook is saved and again before every attempt (a name may
resolve elsewhere by then). http and https only; never link-local, metadata or reserved addresses; loopback,
private networks and this machine's own addresses only with ``PREFSTUDIO_ALLOW_PRIVATE_WEBHOOKS=true``.

The address rules are the model servers' (``app.generation.egress``), which also guard the connection itself.
"""

from __future__ import annotations

import socket
from functools import lru_cache
from ipaddress import ip_address
from urllib.parse import urlsplit

from app.generation.egress import IPAddress, address_problem, host_problem, numeric_ipv4

SETTING = "PREFSTUDIO_ALLOW_PRIVATE_WEBHOOKS"
MAX_URL = 2000


@lru_cache(maxsize=1)
def own_addresses() -> frozenset[IPAddress]:
    """The addresses this machine's name resolves to (the app may listen on any of them)."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None)
    except OSError:
        return frozenset()
    return frozenset(ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos)


def _literal(host: str) -> IPAddress | None:
    name = host.strip("[]")
    try:
        return ip_address(name)
    except ValueError:
        return numeric_ipv4(name)


def _address_refused(host: str, address: IPAddress, *, allow_private: bool) -> str | None:
    if address_problem(address, allow_private=True):
        return f"{host} is a link-local, metadata or reserved address, never a webhook receiver"
    if not allow_private and (address_problem(address, allow_private=False) or address in own_addresses()):
        return f"{host} is a loopback or private address or this machine; set {SETTING}=true to send webhooks there"
    return None


def _resolved(host: str, port: int) -> list[IPAddress] | str:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"{host} does not resolve: {exc}"
    return [ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def url_problem(url: str, *, allow_private: bool, resolve: bool = True) -> str | None:
    """Why a webhook must not be sent to ``url`` (None: it may). With ``resolve``, a name is looked up and every
    address it has is checked (one bad address condemns the name: which one is used is not ours to choose)."""
    if len(url) > MAX_URL:
        return f"the URL is longer than {MAX_URL} characters"
    try:
        parts = urlsplit(url.strip())
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        return f"not a URL: {exc}"
    if parts.scheme not in ("http", "https"):
        return "only http:// and https:// URLs can receive webhooks"
    host = parts.hostname
    if not host:
        return "the URL has no host"
    if parts.username is not None or parts.password is not None:
        return "the URL must not carry a user name or password (the signature authenticates the sender)"
    if host_problem(host, allow_private=True):
        return f"{host} is a link-local, metadata or reserved address, never a webhook receiver"
    if not allow_private and host_problem(host, allow_private=False):
        return f"{host} is a loopback or private address; set {SETTING}=true to send webhooks there"
    literal = _literal(host)
    addresses = [literal] if literal is not None else (_resolved(host, port) if resolve else [])
    if isinstance(addresses, str):
        return addresses
    for address in addresses:
        problem = _address_refused(host, address, allow_private=allow_private)
        if problem:
            return problem
    return None
