"""HTML: a project's model registry — its models, their lineage and serving endpoints."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["model registry pages"], include_in_schema=False)
