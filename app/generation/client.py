"""Asking an OpenAI-compatible server (vLLM) for candidates: requests, retries, backoff, timeouts."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.generation.bound import Bound
from app.generation.diagnosis import explain_exception, explain_status
from app.generation.egress import AddressRefused
from app.generation.schemas import GenerationSettings
from app.ops import metrics

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
MAX_ANSWER_BYTES = 64 << 20  # four candidates of 32k tokens with their logprobs fit several times over
SEED_RANGE = 2**31  # the candidate's seed column (and what every server takes)
MAX_COUNT = 2**31 - 1  # token counts: larger ones are a server's error, stored as unknown
# vLLM's Prometheus metrics: requests in the engine's queue, one line per engine.
_WAITING = re.compile(rb"^vllm:num_requests_waiting\{[^}\n]*\}\s+([0-9.eE+-]+)\s*$", re.MULTILINE)
MAX_METRICS_BYTES = 4 << 20


def derive_seed(base: int, offset: int) -> int:
    """The seed of one request: the project's base seed moved by the item and the attempt, kept in range."""
    return (base + offset) % SEED_RANGE


class UnexpectedAnswer(ValueError):
    """A 200 answer that is not a completion of the kind asked for."""


class GenerationError(Exception):
    """A request that failed for good (after retries, or a non-retryable answer); ``problem`` in plain words."""

    def __init__(self, error: str, problem: str | None = None) -> None:
        super().__init__(error)
        self.problem = problem or error


@dataclass
class Sample:
    text: str
    model: str
    base_url: str
    params: dict[str, Any]
    seed: int | None
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float
    model_id: int | None = None  # the registered model that wrote it, when the settings name one
    weights_sha256: str | None = None


@dataclass
class Stats:
    requests: int = 0
    retries: int = 0
    errors: int = 0
    last_error: str | None = None
    last_problem: str | None = None  # the last error in plain words, with what to check
    in_flight: dict[str, int] = field(default_factory=dict)


def backoff_delay(attempt: int, settings: GenerationSettings) -> float:
    """Capped exponential backoff with full jitter."""
    return random.uniform(0, min(settings.backoff_cap_s, settings.backoff_base_s * (2**attempt)))


def render_completion_prompt(prompt: Any) -> str:
    """Completion mode: text prompts as they are; chat prompts as "Role: content" turns."""
    if isinstance(prompt, str):
        return prompt
    turns = [f"{m['role'].capitalize()}: {m['content']}" for m in prompt]
    return "\n\n".join([*turns, "Assistant:"])


def _messages(prompt: Any) -> list[dict[str, str]]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": m["role"], "content": m["content"]} for m in prompt]


class Pool:
    """The servers of one job, each with its own bound on requests in flight; picks the least busy."""

    def __init__(self, settings: GenerationSettings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client
        self.urls = settings.servers()
        self.limits = {u: Bound(settings.concurrency) for u in self.urls}
        self.stats = Stats(in_flight=dict.fromkeys(self.urls, 0))
        self.no_metrics: set[str] = set()  # servers without vLLM's queue metrics

    def set_bound(self, per_server: int) -> None:
        """Requests in flight allowed per server from now on (the job's adaptive bound)."""
        for limit in self.limits.values():
            limit.set_limit(per_server)

    async def queue_depth(self) -> float | None:
        """The most requests any of the servers has waiting in its queue (vLLM's ``/metrics``), None when none of
        them says; a server that does not answer is not asked again in this job."""
        depths = []
        for url in self.urls:
            if url in self.no_metrics:
                continue
            key = self.settings.key_for(url)
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            try:
                async with self.client.stream("GET", url + "/metrics", headers=headers, timeout=2.0) as response:
                    found = (
                        _WAITING.findall(await _read_bounded(response, MAX_METRICS_BYTES))
                        if response.status_code == 200
                        else []
                    )
            except (httpx.HTTPError, AddressRefused, UnexpectedAnswer):
                found = []
            if not found:
                self.no_metrics.add(url)
                continue
            depths.append(sum(float(v) for v in found))
        return max(depths) if depths else None

    def _pick(self, preferred: str | None) -> str:
        if preferred:
            return preferred
        return min(self.urls, key=lambda u: self.stats.in_flight[u])

    async def request(
        self,
        *,
        prompt: Any,
        model: str,
        n: int,
        seed: int,
        temperature: float,
        base_url: str | None = None,
        extra_body: dict[str, Any] | None = None,
    ) -> list[Sample]:
        """One request (n samples), retried on connection errors, timeouts, 408/429/5xx. ``extra_body`` is merged
        into the request's JSON last (``logprobs``, ``structured_outputs``, ...)."""
        s = self.settings
        url = self._pick(base_url)
        params: dict[str, Any] = {"temperature": temperature, "top_p": s.top_p, "max_tokens": s.max_tokens}
        if s.stop:
            params["stop"] = s.stop
        seed = seed % SEED_RANGE
        body: dict[str, Any] = {"model": model, "n": n, "seed": seed, **params}
        if n > 1:
            # usage counts all n samples together; the token lists of logprobs give each one's length.
            body["logprobs"] = True if s.mode == "chat" else 0
        if s.mode == "chat":
            path, body["messages"] = "/v1/chat/completions", _messages(prompt)
        else:
            path, body["prompt"] = "/v1/completions", render_completion_prompt(prompt)
        if extra_body:
            body.update(extra_body)
        key = s.key_for(url)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        attempt = 0
        while True:
            problem: str | None = None
            async with self.limits[url]:
                self.stats.in_flight[url] += 1
                self.stats.requests += 1
                started = time.perf_counter()
                try:
                    async with self.client.stream(
                        "POST", url + path, json=body, headers=headers, timeout=s.timeout_s
                    ) as response:
                        error = None if response.status_code < 400 else f"HTTP {response.status_code} from {url}"
                        retryable = response.status_code in RETRY_STATUS
                        if error is None:
                            raw = await _read_bounded(response)
                        else:
                            problem = explain_status(response.status_code, url=url, model=model)
                except AddressRefused as exc:  # where the server is will not change on a retry
                    error, retryable = str(exc)[:500], False
                    problem = explain_exception(exc, url=url, model=model)
                except httpx.TransportError as exc:  # connect/read errors, timeouts
                    error, retryable = f"{type(exc).__name__} from {url}: {exc}"[:500], True
                    problem = explain_exception(exc, url=url, model=model)
                finally:
                    self.stats.in_flight[url] -= 1
            latency = (time.perf_counter() - started) * 1000
            if error is None:
                try:
                    data = json.loads(raw)
                except (ValueError, RecursionError) as exc:  # a cut-off answer: worth another try
                    error, retryable = f"{type(exc).__name__} from {url}: {exc}"[:500], True
                    problem = explain_exception(exc, url=url, model=model)
            if error is None:
                try:
                    return self._samples(data, url=url, model=model, seed=seed, params=params, latency=latency)
                except (UnexpectedAnswer, KeyError, TypeError, IndexError, AttributeError) as exc:
                    error, retryable = f"unexpected answer from {url}: {exc!r}"[:500], False
                    problem = explain_exception(UnexpectedAnswer(str(exc)), url=url, model=model)
            self.stats.last_error, self.stats.last_problem = error, problem
            if not retryable or attempt >= s.max_retries:
                self.stats.errors += 1
                raise GenerationError(error, problem)
            self.stats.retries += 1
            metrics.count_retry("generation")
            await asyncio.sleep(backoff_delay(attempt, s))
            attempt += 1

    def _samples(
        self, data: Any, *, url: str, model: str, seed: int, params: dict[str, Any], latency: float
    ) -> list[Sample]:
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list) or not data["choices"]:
            raise UnexpectedAnswer("no list of choices")
        usage: dict[str, Any] = data["usage"] if isinstance(data.get("usage"), dict) else {}
        choices = data["choices"]
        if not all(isinstance(c, dict) for c in choices):
            raise UnexpectedAnswer("a choice is not an object")
        indexes = [c.get("index", 0) for c in choices]
        if any(type(i) is not int for i in indexes):
            raise UnexpectedAnswer("a choice's index is not a number")
        choices = sorted(choices, key=lambda c: int(c.get("index", 0)))
        answered = data.get("model")
        out = []
        for choice in choices:
            per_choice = usage.get("completion_tokens") if len(choices) == 1 else _token_count(choice)
            text = choice["message"]["content"] if self.settings.mode == "chat" else choice["text"]
            if text is not None and not isinstance(text, str):
                raise UnexpectedAnswer("a candidate's text is not a string")
            reason = choice.get("finish_reason")
            out.append(
                Sample(
                    text=text or "",
                    model=(answered if isinstance(answered, str) and answered else model)[:200],
                    base_url=url,
                    params={**params, "mode": self.settings.mode, "n_index": choice.get("index", 0)},
                    seed=seed,
                    finish_reason=reason[:32] if isinstance(reason, str) else None,
                    prompt_tokens=_count(usage.get("prompt_tokens")),
                    completion_tokens=_count(per_choice),
                    latency_ms=latency,
                )
            )
        return out


async def _read_bounded(response: httpx.Response, limit: int = MAX_ANSWER_BYTES) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise UnexpectedAnswer(f"longer than {limit} bytes")
    return bytes(body)


def _count(value: Any) -> int | None:
    """A token count as the database can hold it; anything else is unknown."""
    return value if type(value) is int and 0 <= value <= MAX_COUNT else None


def _token_count(choice: dict[str, Any]) -> int | None:
    logprobs = choice.get("logprobs") or {}
    tokens = logprobs.get("content") if isinstance(logprobs, dict) else None
    if tokens is None and isinstance(logprobs, dict):
        tokens = logprobs.get("tokens")
    return len(tokens) if isinstance(tokens, list) else None


async def candidates_for(pool: Pool, *, prompt: Any, k: int, seed: int) -> list[Sample]:
    """k candidates for one prompt by the configured strategy, re-sampling exact duplicates (twice at most) except
    under per_model."""
    s = pool.settings
    if s.strategy == "n_seeds":
        samples = await pool.request(prompt=prompt, model=s.model, n=k, seed=seed, temperature=s.temperature)
    elif s.strategy == "temperature_ladder":
        parts = await asyncio.gather(
            *(
                pool.request(
                    prompt=prompt, model=s.model, n=1, seed=derive_seed(seed, i), temperature=s.temperatures[i]
                )
                for i in range(k)
            )
        )
        samples = [p[0] for p in parts]
    else:
        parts = await asyncio.gather(
            *(
                pool.request(
                    prompt=prompt,
                    model=m.model,
                    n=1,
                    seed=derive_seed(seed, i),
                    temperature=s.temperature,
                    base_url=m.base_url,
                )
                for i, m in enumerate(s.models[:k])
            )
        )
        samples = [p[0] for p in parts]
    if len(samples) != k:
        raise GenerationError(f"asked for {k} candidates, got {len(samples)}")
    if s.strategy == "per_model":
        for sample, choice in zip(samples, s.models[:k], strict=True):
            sample.model_id, sample.weights_sha256 = choice.model_id, choice.weights_sha256
    else:
        for sample in samples:
            sample.model_id, sample.weights_sha256 = s.model_id, s.weights_sha256
    # One candidate per model: the same answer from two models is a finding (an arena counts it as a tie and does not
    # ask people), not a sampling accident to draw again. Other strategies draw an exact duplicate again, twice at most.
    for attempt in range(0 if s.strategy == "per_model" else 2):
        seen: dict[str, int] = {}
        duplicates = []
        for i, sample in enumerate(samples):
            key = " ".join(sample.text.split())
            if key in seen:
                duplicates.append(i)
            else:
                seen[key] = i
        if not duplicates:
            break
        for i in duplicates:
            fresh = await pool.request(
                prompt=prompt,
                model=samples[i].model,
                n=1,
                seed=derive_seed(seed, 1000 * (attempt + 1) + i),
                temperature=samples[i].params["temperature"],
                base_url=samples[i].base_url,
            )
            fresh[0].model_id, fresh[0].weights_sha256 = samples[i].model_id, samples[i].weights_sha256
            samples[i] = fresh[0]
    seen = {}
    for i, sample in enumerate(samples):
        key = " ".join(sample.text.split())
        if key in seen:
            sample.params["duplicate_of"] = seen[key]
        else:
            seen[key] = i
    return samples
