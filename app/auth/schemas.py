"""JSON shapes of the account and token API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.auth.service import TokenRow
from app.kit.forms import BlankIsMissingForm


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str = Field(description="the first characters of the token, to tell tokens apart")
    scope: str
    username: str
    project: str | None = Field(description="an export token's project (slug)")
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: TokenRow) -> TokenOut:
        t = row.token
        return cls(
            id=t.id,
            name=t.name,
            prefix=t.prefix,
            scope=t.scope,
            username=row.username,
            project=row.project,
            created_at=t.created_at,
            last_used_at=t.last_used_at,
            revoked_at=t.revoked_at,
        )


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=200)


class TokenCreated(TokenOut):
    token: str = Field(description="shown once; only its keyed hash is stored")


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    old_password: str = Field(max_length=1000)
    new_password: str = Field(max_length=1000)


# --- the HTML forms --------------------------------------------------------------------------------------------


class LoginForm(BlankIsMissingForm):
    username: str = Field("", max_length=200)
    password: str = Field("", max_length=1000)
    csrf_token: str = Field("", max_length=200)
    next: str = Field("/projects", max_length=2000)


class NewUserForm(BlankIsMissingForm):
    username: str = Field(max_length=200)
    password: str = Field(max_length=1000)
    role: str = Field("annotator", max_length=20)
    display_name: str = Field("", max_length=200)


class PasswordResetForm(BlankIsMissingForm):
    password: str = Field(max_length=1000)


class ActiveForm(BlankIsMissingForm):
    active: str = Field("0", max_length=5)  # "1": on, anything else: off


class TokenForm(BlankIsMissingForm):
    name: str = Field("", max_length=200)


class OwnPasswordForm(BlankIsMissingForm):
    old_password: str = Field("", max_length=1000)
    new_password: str = Field("", max_length=1000)
