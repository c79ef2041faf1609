"""Generation settings of a project (stored as JSON on the project) and job requests."""

from __future__ import annotations

import re
from datetime import datetime
from ipaddress import ip_address
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.generation.egress import numeric_ipv4
from app.kit.forms import FormModel
from app.kit.schemas import RowId

MASKED_KEY = "••••"
MAX_URL_LENGTH = 500  # the candidate's base_url column
_HOSTNAME = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*")
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")


def _canonical_host(netloc: str, host: str) -> str:
    if netloc.startswith("[") or ":" in host:
        if "%" in host:
            raise ValueError("an IPv6 zone id is not allowed in a model server URL")
        return f"[{ip_address(host).compressed}]"
    host = host.removesuffix(".")
    numeric = numeric_ipv4(host)
    if numeric is not None:  # 127.1, 0x7f000001 and 2130706433 are all 127.0.0.1: store what they mean
        return str(numeric)
    if len(host) > 253 or not _HOSTNAME.fullmatch(host):
        raise ValueError(f"{host!r} is not a host name")
    return host


def normalize_base_url(url: str) -> str:
    """``HTTP://Host:8000/v1/`` → ``http://host:8000``: http(s), a host and port, at most a plain path; no
    credentials, query or fragment. Numeric IPv4 forms become dotted quads."""
    text = url.strip()
    if len(text) > MAX_URL_LENGTH:
        raise ValueError(f"a model server URL has at most {MAX_URL_LENGTH} characters")
    if not text.isascii() or any(c.isspace() or not c.isprintable() or c == "\\" for c in text):
        raise ValueError(f"{text[:100]!r}: spaces, backslashes, control or non-ASCII characters (names in punycode)")
    if "@" in text.split("://", 1)[-1].split("/", 1)[0]:  # said before anything quotes the URL
        raise ValueError("no credentials in a model server URL; put a key in the API key field")
    if "?" in text or "#" in text:
        raise ValueError("a model server URL has no query or fragment")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not text[len(scheme) :].startswith("://"):
        raise ValueError(f"{text!r} is not an http(s) URL")
    if not parts.hostname:
        raise ValueError(f"{text!r} has no host")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{text!r}: the port is not a number from 1 to 65535") from exc
    if port == 0:
        raise ValueError(f"{text!r}: the port is not a number from 1 to 65535")
    try:
        host = _canonical_host(parts.netloc, parts.hostname)
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from exc
    path = parts.path.rstrip("/").removesuffix("/v1")
    for segment in path.split("/")[1:]:
        if segment in (".", "..") or not _PATH_SEGMENT.fullmatch(segment):
            raise ValueError(f"{text!r}: the path may hold only letters, digits and . _ ~ - between slashes")
    return f"{scheme}://{host}{f':{port}' if port is not None else ''}{path}"


def origin_of(url: str) -> str:
    """``http://host:8000/prefix`` → ``http://host:8000`` (of a normalised URL)."""
    return "/".join(url.split("/", 3)[:3])


class ModelChoice(BaseModel):
    """One model of the "per_model" strategy, optionally on its own server."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=200)
    base_url: str | None = None
    # Set when the choice is a registered model (an arena, a round mixing policies): its candidates record both.
    model_id: int | None = None
    weights_sha256: str | None = Field(default=None, max_length=64)

    @field_validator("base_url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        return normalize_base_url(url) if url and url.strip() else None


class GenerationSettings(BaseModel):
    """How candidates are sampled from an OpenAI-compatible (vLLM) server."""

    model_config = ConfigDict(extra="forbid")
    base_urls: list[str] = Field(default_factory=list, max_length=16)
    model: str = Field(default="", max_length=200)
    api_key: str | None = Field(default=None, max_length=500)
    # The servers (scheme, host and port) the key was entered for: it is sent to no other.
    api_key_origins: list[str] | None = Field(default=None, max_length=32)
    mode: Literal["chat", "completion"] = "chat"
    temperature: float = Field(default=1.0, ge=0, le=5)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_tokens: int = Field(default=512, ge=1, le=32_768)
    stop: list[str] = Field(default_factory=list, max_length=8)
    # n_seeds: one request with n=k (one request seed; vLLM samples k distinct sequences from it);
    # temperature_ladder: k requests, temperatures[i] and seed+i; per_model: one candidate per model.
    strategy: Literal["n_seeds", "temperature_ladder", "per_model"] = "n_seeds"
    temperatures: list[float] = Field(default_factory=lambda: [0.6, 0.9, 1.2, 1.5], max_length=4)
    models: list[ModelChoice] = Field(default_factory=list, max_length=4)
    seed: int = Field(default=1234, ge=0, le=2**31 - 1)
    # The registered model behind base_urls/model, when a job samples from one (an on-policy round): its candidates
    # record it and its weights digest.
    model_id: int | None = None
    weights_sha256: str | None = Field(default=None, max_length=64)
    concurrency: int = Field(default=64, ge=1, le=1024, description="requests in flight per base URL")
    timeout_s: float = Field(default=60.0, gt=0, le=3600)
    max_retries: int = Field(default=5, ge=0, le=20)
    backoff_base_s: float = Field(default=0.5, ge=0, le=60)
    backoff_cap_s: float = Field(default=20.0, ge=0, le=600)
    max_consecutive_failures: int = Field(default=20, ge=1, le=10_000)

    @field_validator("base_urls")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        return [normalize_base_url(u) for u in urls if u.strip()]

    @model_validator(mode="after")
    def _key_belongs_to_servers(self) -> GenerationSettings:
        # Settings stored before keys were tied to servers: the key belongs to the servers stored with it.
        if self.api_key and self.api_key_origins is None:
            self.api_key_origins = self.origins()
        if not self.api_key:
            self.api_key_origins = None
        return self

    def servers(self) -> list[str]:
        """Every base URL a job or the health check may ask, each once."""
        return list(dict.fromkeys([*self.base_urls, *(m.base_url for m in self.models if m.base_url)]))

    def origins(self) -> list[str]:
        return sorted({origin_of(url) for url in self.servers()})

    def key_for(self, url: str) -> str | None:
        """The API key, for a server it was entered for; None for any other."""
        return self.api_key if self.api_key and origin_of(url) in (self.api_key_origins or []) else None

    def problems(self, k: int) -> list[str]:
        """What keeps these settings from generating k candidates (empty when ready)."""
        found = []
        if not self.base_urls and not (self.strategy == "per_model" and all(m.base_url for m in self.models)):
            found.append("no vLLM base URL configured")
        if self.strategy != "per_model" and not self.model:
            found.append("no model name configured")
        if self.strategy == "temperature_ladder" and len(self.temperatures) < k:
            found.append(f"the temperature ladder needs {k} temperatures")
        if self.strategy == "per_model" and len(self.models) < k:
            found.append(f"the per-model strategy needs {k} models")
        return found

    def public(self) -> dict[str, Any]:
        """The settings without the API key (for pages and JSON)."""
        data = self.model_dump()
        data["api_key"] = MASKED_KEY if self.api_key else None
        return data


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    selection: Literal["missing", "ids", "all_bad", "all_ready"] = Field(
        "missing",
        description='missing: items without candidates; ids: the listed items; all_bad: items judged "all bad"; '
        "all_ready: every item with candidates (gold items left out), each into a new round",
    )
    item_ids: list[RowId] = Field(default_factory=list, max_length=100_000)
    model_id: RowId | None = Field(
        default=None,
        description="a new round from this registered model of the project (it needs a base URL and a served name)",
    )
    mix_previous: bool = Field(
        default=False,
        description="with model_id: one candidate of each item from the current policy, the others from the model",
    )
    force: bool = Field(
        default=False, description="start even when no configured server answers this app (the worker may reach them)"
    )


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    kind: str
    state: str
    progress_done: int
    progress_total: int
    params: dict[str, Any]
    result: dict[str, Any]
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class HealthOut(BaseModel):
    base_url: str
    ok: bool
    models: list[str] = Field(default_factory=list)
    max_model_len: int | None = None
    error: str | None = None
    problem: str | None = Field(default=None, description="what is wrong, in plain words, and what to check")
    latency_ms: float | None = None


# --- the HTML forms (a field not sent reads as its default: "" unless stated) ---------------------------------


class SettingsForm(FormModel):
    """The generation settings as typed: lists one per line (or comma-separated), numbers as text."""

    base_urls: str = ""
    model: str = ""
    mode: str = "chat"
    strategy: str = "n_seeds"
    stop: str = ""  # separated by |
    models: str = ""  # one ``model@base_url`` (or ``model``) per line
    temperature: str = ""
    top_p: str = ""
    timeout_s: str = ""
    max_tokens: str = ""
    seed: str = ""
    concurrency: str = ""
    max_retries: str = ""
    temperatures: str = ""
    api_key: str = ""  # blank: the stored key stays
    clear_api_key: str = ""


class StartForm(FormModel):
    selection: str = "missing"
    item_ids: str = ""  # one per line, or comma-separated
    model_id: str = ""  # a new round from this registered model ("": the project's settings)
    mix_previous: str = ""
