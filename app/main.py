"""create_app(): what the web app is made of — settings, database, middleware, error handlers, routers, static
files and the server process's lifespan."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app.adjudication import api as adjudication_api
from app.adjudication import router as adjudication_router
from app.agreement import api as agreement_api
from app.agreement import router as agreement_router
from app.annotation import api as annotation_api
from app.annotation import router as annotation_router
from app.arena import api as arena_api
from app.arena import router as arena_router
from app.auth import api as auth_api
from app.auth import router as auth_router
from app.config import ROOT, Settings, get_settings
from app.consensus import api as consensus_api
from app.db import make_database
from app.export import api as export_api
from app.export import router as export_router
from app.generation import api as generation_api
from app.generation import router as generation_router
from app.i18n import router as i18n_router
from app.items import api as items_api
from app.items import router as items_router
from app.judge import api as judge_api
from app.judge import router as judge_router
from app.kit.markdown import parse_origins, set_image_origins
from app.kit.schemas import API_ERROR_RESPONSES
from app.ops import router as ops_router
from app.projects import api as projects_api
from app.projects import router as projects_router
from app.registry import api as registry_api
from app.registry import router as registry_router
from app.training import api as training_api
from app.training import router as training_router
from app.web import system, warmup
from app.web.errors import add_exception_handlers
from app.web.middleware import add_middleware, security_headers
from app.webhooks import api as webhooks_api
from app.webhooks import router as webhooks_router

# The HTML pages, in the order their routes are matched.
PAGE_ROUTERS = (
    auth_router,
    i18n_router,
    projects_router,
    items_router,
    annotation_router,
    generation_router,
    judge_router,
    agreement_router,
    adjudication_router,
    export_router,
    training_router,
    registry_router,
    arena_router,
    webhooks_router,
)
# The JSON API under /api/v1.
API_ROUTERS = (
    auth_api,
    projects_api,
    items_api,
    annotation_api,
    generation_api,
    judge_api,
    agreement_api,
    consensus_api,
    adjudication_api,
    export_api,
    training_api,
    registry_api,
    arena_api,
    webhooks_api,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        lifespan=warmup.lifespan,
        title="prefstudio",
        version="0.1.0",
        description="Human preference data for DPO: prompts → candidates → judgments → pairs.",
        docs_url=None,  # our own page (app.web.system): FastAPI's loads Swagger UI from a CDN with an inline script
        redoc_url=None,
    )
    app.state.settings = settings
    image_origins = parse_origins(settings.markdown_image_origins)
    set_image_origins(image_origins)
    headers = security_headers(image_origins)
    app.state.db = make_database(settings)

    add_exception_handlers(app, headers=headers)
    add_middleware(app, settings, headers=headers)
    app.mount("/static", StaticFiles(directory=str(ROOT / "static")), name="static")
    app.include_router(system.router)
    app.include_router(ops_router.router)  # /metrics
    for module in PAGE_ROUTERS:
        app.include_router(module.router)
    for module in API_ROUTERS:
        app.include_router(module.router, prefix="/api/v1", responses=API_ERROR_RESPONSES)
    return app
