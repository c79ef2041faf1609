"""HTML: arenas — blind evaluations of registered models, and their leaderboards."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["arena pages"], include_in_schema=False)
