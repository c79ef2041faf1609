"""JSON: arenas and their leaderboards."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["arena"])
