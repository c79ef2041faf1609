"""Form bodies as dependencies, so that routes can stay plain ``def`` (run in the thread pool, off the loop)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import UploadFile


async def form_fields(request: Request) -> dict[str, str]:
    """The text fields of a urlencoded or multipart form (Starlette caches the parsed form)."""
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


async def form_items(request: Request) -> list[tuple[str, str]]:
    """Every text field in order, repeated keys kept (checkbox groups)."""
    form = await request.form()
    return [(key, value) for key, value in form.multi_items() if isinstance(value, str)]


async def form_file(request: Request) -> UploadFile | None:
    """The uploaded ``file`` field, if any."""
    form = await request.form()
    upload = form.get("file")
    return upload if isinstance(upload, UploadFile) and upload.filename else None


FormFields = Annotated[dict[str, str], Depends(form_fields)]
FormItems = Annotated[list[tuple[str, str]], Depends(form_items)]
FormFile = Annotated[UploadFile | None, Depends(form_file)]
