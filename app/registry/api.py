"""JSON: a project's model registry."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["models"])
