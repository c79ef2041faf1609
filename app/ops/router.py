"""``GET /metrics``: Prometheus's text format, for a scraper that shows the metrics token or comes from an allowed
address; everybody else gets the same 404 as for a URL that does not exist.

404 rather than 401/403: a scanner learns nothing (not even that the route is there), and a scraper with a wrong
token sees its target "down", which is what Prometheus reports for either.
"""

from __future__ import annotations

import hashlib
import hmac
from ipaddress import ip_address

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from app.auth.deps import client_address
from app.config import Settings
from app.ops import metrics
from app.ops.collector import DatabaseCollector
from app.web.deps import DatabaseDep, SettingsDep

router = APIRouter()


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def token_matches(request: Request, settings: Settings) -> bool:
    """Whether the request shows the metrics token (compared in constant time, whatever its length)."""
    if settings.metrics_token is None:
        return False
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        return False
    shown = header[7:].strip()
    return hmac.compare_digest(_digest(shown), _digest(settings.metrics_token.get_secret_value()))


def address_allowed(request: Request, settings: Settings) -> bool:
    """Whether the client (behind trusted proxies: the address they forwarded) is in ``metrics_allow``."""
    networks = settings.metrics_allow_networks
    if not networks:
        return False
    try:
        address = ip_address(client_address(request))
    except ValueError:  # "unknown", or a test client's name
        return False
    return any(address in network for network in networks)


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics(request: Request, settings: SettingsDep, db: DatabaseDep) -> Response:
    """The process's metrics and the database's figures, for Prometheus (token or allowed address only)."""
    if not (token_matches(request, settings) or address_allowed(request, settings)):
        raise HTTPException(status_code=404)  # what a URL without a route gets
    collector = DatabaseCollector(db, max_projects=settings.metrics_max_projects)
    return Response(metrics.exposition(collector), media_type=metrics.CONTENT_TYPE)
