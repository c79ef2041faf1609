"""What went wrong with a model server, in plain words: what happened and what to check.

The technical error (``ConnectError: [Errno 111] Connection refused``) stays in the job's result and the health
answer for whoever debugs; people read these sentences first.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from app.generation.egress import AddressRefused
from app.i18n import gettext

DNS_MARKERS = ("name or service not known", "nodename nor servname", "name resolution", "no address associated")


def _port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def unreachable(exc: BaseException) -> bool:
    """True when the error says nothing answered at all (refused, unknown host, no connection in time)."""
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))


def explain_exception(exc: BaseException, *, url: str, model: str = "") -> str:
    """A failed request to ``url`` as a sentence: what is wrong and what to check."""
    text = str(exc).lower()
    if isinstance(exc, AddressRefused):
        return gettext("This installation does not connect to {url}: {detail}").format(url=url, detail=exc)
    if isinstance(exc, httpx.ConnectError) and any(m in text for m in DNS_MARKERS):
        host = urlsplit(url).hostname or url
        return gettext(
            "The host name {host} in {url} does not resolve — check the base URL (in Docker Compose, use the "
            "service name, such as http://vllm:8000)."
        ).format(host=host, url=url)
    if isinstance(exc, httpx.ConnectError):
        return gettext("No server answers at {url} — is vLLM running? Start it with: {command}").format(
            url=url, command=f"vllm serve {model or 'MODEL'} --port {_port(url)}"
        )
    if isinstance(exc, httpx.ConnectTimeout):
        return gettext(
            "{url} did not accept a connection in time — is the host reachable from here (firewall, port)?"
        ).format(url=url)
    if isinstance(exc, httpx.TimeoutException):
        return gettext(
            "{url} took longer than the request timeout — the model may still be loading or the server is "
            "overloaded; wait, or raise the timeout in the settings."
        ).format(url=url)
    if isinstance(exc, httpx.TransportError):
        return gettext(
            "The connection to {url} broke off — is the server restarting, and is it an OpenAI-compatible "
            "server (vLLM)?"
        ).format(url=url)
    if isinstance(exc, httpx.HTTPStatusError):
        return explain_status(exc.response.status_code, url=url, model=model, listing=True)
    if isinstance(exc, (ValueError, RecursionError)):
        return gettext(
            "{url} answered, but not as an OpenAI-compatible server does — check that the base URL points at vLLM."
        ).format(url=url)
    return f"{url}: {type(exc).__name__}: {exc}"


def explain_status(status: int, *, url: str, model: str = "", listing: bool = False) -> str:
    """An HTTP error answer as a sentence; ``listing`` when it answered the model list rather than a request."""
    if status in (401, 403):
        return gettext("{url} refused the API key (HTTP {status}) — check the API key in the settings.").format(
            url=url, status=status
        )
    if status == 404 and listing:
        return gettext(
            "{url} has no OpenAI-compatible API (HTTP 404 for /v1/models) — the base URL ends at the port, without /v1."
        ).format(url=url)
    if status == 404:
        return gettext(
            "{url} does not serve the model “{model}” (HTTP 404) — check the model name against the server's model "
            "list (Check now)."
        ).format(url=url, model=model)
    if status == 429:
        return gettext("{url} is overloaded (HTTP 429) — lower the requests in flight per server.").format(url=url)
    if status >= 500:
        return gettext("{url} failed with a server error (HTTP {status}) — see the vLLM server's log.").format(
            url=url, status=status
        )
    return gettext("{url} refused the request (HTTP {status}).").format(url=url, status=status)


def model_missing(url: str, model: str, served: list[str]) -> str:
    """A server that answers but does not serve the configured model."""
    text = gettext("{url} is up but does not serve “{model}”; it serves: {served}. Set the model name to one of them.")
    return text.format(url=url, model=model, served=", ".join(served) or "—")
