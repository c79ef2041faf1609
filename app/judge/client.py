"""Asking a judge server one comparison: constrained answer (vLLM structured outputs), logprobs, retries."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.generation.client import RETRY_STATUS, backoff_delay
from app.generation.egress import AddressRefused
from app.judge import rubric
from app.judge.schemas import JudgeServer, JudgeSettings
from app.ops import metrics

RATIONALE_CHARS = 200
TOP_LOGPROBS = 20


class JudgeError(Exception):
    """A comparison that failed for good (after retries, or a non-retryable answer)."""


class PromptTooLong(JudgeError):
    """The server refused the prompt as longer than its context: ask again with shorter candidates."""


@dataclass
class Answer:
    answer: str | None
    p: float | None
    rationale: str


@dataclass
class JudgeStats:
    requests: int = 0
    retries: int = 0
    errors: int = 0
    last_error: str | None = None
    in_flight: dict[str, int] = field(default_factory=dict)


def request_body(settings: JudgeSettings, judge: JudgeServer, text: str, k: int) -> tuple[str, dict[str, Any]]:
    """The path and body of one comparison: temperature 0, the answer constrained to the allowed ones."""
    allowed = rubric.allowed_answers(k)
    if settings.rationale:  # the answer on the first line, then a short rationale
        # The newline is written as an escape: the grammar compiler refuses a raw one in a character class.
        pattern = "(" + "|".join(allowed) + ")\\n[^\\n]{1," + str(RATIONALE_CHARS) + "}"
        constraint: dict[str, Any] = {"regex": pattern}
        max_tokens = RATIONALE_CHARS // 2 + 8
    else:
        constraint = {"choice": allowed}
        max_tokens = k + 4
    body: dict[str, Any] = {
        "model": judge.model,
        "temperature": 0,
        "max_tokens": max_tokens,
        "structured_outputs": constraint,
    }
    if settings.mode == "chat":
        body.update(messages=[{"role": "user", "content": text}], logprobs=True, top_logprobs=TOP_LOGPROBS)
        return "/v1/chat/completions", body
    body.update(prompt=text, logprobs=TOP_LOGPROBS)
    return "/v1/completions", body


def parse_answer(data: Any, *, k: int, mode: str) -> Answer:
    """The answer, its probability among the allowed answers (from the first token's top logprobs) and rationale."""
    choice = data["choices"][0]
    content = choice["message"]["content"] if mode == "chat" else choice["text"]
    content = content if isinstance(content, str) else ""
    answer = rubric.answer_of(content, k)
    p = None
    logprobs = choice.get("logprobs") or {}
    if answer is not None and mode == "chat" and logprobs.get("content"):
        p = rubric.answer_probability(
            logprobs["content"][0].get("top_logprobs") or [], answer, rubric.allowed_answers(k)
        )
    elif answer is not None and logprobs.get("top_logprobs"):
        top = [{"token": t, "logprob": lp} for t, lp in (logprobs["top_logprobs"][0] or {}).items()]
        p = rubric.answer_probability(top, answer, rubric.allowed_answers(k))
    return Answer(answer=answer, p=p, rationale=rubric.rationale_of(content)[:2000])


def _too_long(status: int, text: str) -> bool:
    lowered = text.lower()
    return status == 400 and ("context length" in lowered or "too long" in lowered or "max_model_len" in lowered)


async def ask(
    http: httpx.AsyncClient,
    limit: asyncio.Semaphore,
    stats: JudgeStats,
    *,
    settings: JudgeSettings,
    judge: JudgeServer,
    text: str,
    k: int,
) -> Answer:
    """One comparison, retried on connection errors, timeouts, 408/429/5xx with capped jittered backoff."""

    path, body = request_body(settings, judge, text, k)
    key = judge.key()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    attempt = 0
    while True:
        async with limit:
            stats.requests += 1
            try:
                response = await http.post(
                    judge.base_url + path, json=body, headers=headers, timeout=settings.timeout_s
                )
                error = None if response.status_code < 400 else f"HTTP {response.status_code} from {judge.base_url}"
                retryable = response.status_code in RETRY_STATUS
                if error and _too_long(response.status_code, response.text):
                    raise PromptTooLong(error)
            except AddressRefused as exc:
                error, retryable = str(exc)[:500], False
            except httpx.TransportError as exc:
                error, retryable = f"{type(exc).__name__} from {judge.base_url}: {exc}"[:500], True
        if error is None:
            try:
                return parse_answer(json.loads(response.content), k=k, mode=settings.mode)
            except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
                error, retryable = f"unexpected answer from {judge.base_url}: {exc!r}"[:500], False
        stats.last_error = error
        if not retryable or attempt >= settings.max_retries:
            stats.errors += 1
            raise JudgeError(error)
        stats.retries += 1
        metrics.count_retry("judge")
        await asyncio.sleep(backoff_delay(attempt, settings))  # type: ignore[arg-type]
        attempt += 1
