"""The app's own routes, outside every domain: the API documentation page and the health check."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import text

from app.web.deps import DatabaseDep

router = APIRouter()
# Swagger UI, vendored (npm swagger-ui-dist, pinned): the page's scripts and styles all come from this site.
SWAGGER_UI = "/static/vendor/swagger-ui-5.35.0"
API_DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>prefstudio API</title>
<link rel="icon" href="/static/favicon.svg">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="/static/js/api-docs.js"></script>
</body>
</html>
"""


@router.get("/api/docs", include_in_schema=False)
def api_docs(request: Request) -> HTMLResponse:
    """Swagger UI on the OpenAPI document, from files vendored under static/ (see SWAGGER_UI)."""
    return HTMLResponse(API_DOCS_PAGE.format(assets=SWAGGER_UI, openapi=escape(request.app.openapi_url or "")))


@router.get("/healthz", tags=["health"])
def healthz(db: DatabaseDep) -> dict[str, str]:
    """Liveness and database reachability."""
    with db.session(write=False) as session:
        session.execute(text("SELECT 1"))
    return {"status": "ok"}
