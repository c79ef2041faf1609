"""HTML form bodies, read one way: into a typed form model, as a dependency.

A route declares ``form: Annotated[LoginForm, form_of(LoginForm)]``; the body is parsed once (Starlette caches
it, so the CSRF check and the route share one parse), its text fields are validated by the model, and a field
that fails its limits is a 422 like any other request validation error. Routes stay plain ``def`` (run in the
thread pool, off the loop): the parsing happens here, on the loop, before them.

Forms whose field names are data (one group of letters per dimension, one row per dimension) declare
``extra="allow"`` and read the rest with ``FormModel.fields``; a field posted once per value (a checkbox
group) is declared as a ``list[str]``.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar, get_origin

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from starlette.datastructures import UploadFile

F = TypeVar("F", bound="FormModel")


class FormModel(BaseModel):
    """The text fields of one form. Unknown fields are ignored unless the model allows them."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    def fields(self) -> dict[str, str]:
        """Every posted text field the model does not declare (only with ``extra="allow"``), by name."""
        return {key: value for key, value in (self.model_extra or {}).items() if isinstance(value, str)}


class BlankIsMissingForm(FormModel):
    """A form whose blank fields count as not sent, as FastAPI's ``Form()`` parameters read them: a blank
    required field is "Field required", a blank optional one takes its default (the forms that had ``Form()``
    parameters keep answering exactly as before)."""

    @model_validator(mode="before")
    @classmethod
    def _drop_blanks(cls, data: Any) -> Any:
        return {key: value for key, value in data.items() if value != ""} if isinstance(data, dict) else data


def _is_list(annotation: Any) -> bool:
    return get_origin(annotation) is list or annotation is list


def form_of(model: type[F]) -> Any:
    """The dependency that reads the request's form into ``model``."""

    async def read(request: Request) -> F:
        form = await request.form()
        data: dict[str, Any] = {}
        for key, value in form.multi_items():
            if not isinstance(value, str):
                continue
            field = model.model_fields.get(key)
            if field is not None and _is_list(field.annotation):
                data.setdefault(key, []).append(value)
            else:
                data[key] = value  # the last of repeated keys, as Starlette's ``form[key]`` gives
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise RequestValidationError(
                [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
            ) from None

    return Depends(read)


async def form_file(request: Request) -> UploadFile | None:
    """The uploaded ``file`` field, if any."""
    form = await request.form()
    upload = form.get("file")
    return upload if isinstance(upload, UploadFile) and upload.filename else None


FormFile = Annotated[UploadFile | None, Depends(form_file)]


# TODO(remove when every router reads a FormModel): the untyped readers being replaced.
async def form_fields(request: Request) -> dict[str, str]:
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


async def form_items(request: Request) -> list[tuple[str, str]]:
    form = await request.form()
    return [(key, value) for key, value in form.multi_items() if isinstance(value, str)]


FormFields = Annotated[dict[str, str], Depends(form_fields)]
FormItems = Annotated[list[tuple[str, str]], Depends(form_items)]
