"""An imported prompt list: JSONL ({"prompt": text or messages, "id": optional}) or one plain prompt per line."""

from __future__ import annotations

import json
from typing import Any

from app.kit.errors import Invalid

ROLES = {"system", "user", "assistant"}
MAX_PROMPT_CHARS = 100_000
MAX_ERRORS = 20


class _Bad(ValueError):
    pass


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Bad(f"{what} must be a non-empty string")
    if "\x00" in value:
        raise _Bad(f"{what} contains a NUL character")
    if len(value) > MAX_PROMPT_CHARS:
        raise _Bad(f"{what} is longer than {MAX_PROMPT_CHARS} characters")
    return value


def _messages(value: list[Any]) -> list[dict[str, str]]:
    if not value:
        raise _Bad("'prompt' has no messages")
    out = []
    for i, m in enumerate(value, start=1):
        if not isinstance(m, dict) or set(m) - {"role", "content"} or m.get("role") not in ROLES:
            raise _Bad(f'message {i} must be {{"role": system|user|assistant, "content": ...}}')
        out.append({"role": m["role"], "content": _text(m.get("content"), f"message {i} content")})
    if out[-1]["role"] != "user":
        raise _Bad("the last message of a chat prompt must be from the user")
    return out


def _record(line: str) -> tuple[str | None, Any]:
    if not line.lstrip().startswith("{"):
        return None, _text(line.strip(), "the prompt")
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise _Bad(f"bad JSON: {exc}") from exc
    if not isinstance(obj, dict) or "prompt" not in obj:
        raise _Bad("a JSON line must be an object with a 'prompt'")
    external = obj.get("id")
    if external is not None and (not isinstance(external, str) or len(external) > 200):
        raise _Bad("'id' must be a string of at most 200 characters")
    prompt = obj["prompt"]
    if isinstance(prompt, list):
        return external, _messages(prompt)
    return external, _text(prompt, "'prompt'")


def parse_prompts(text: str, *, limit: int) -> list[tuple[str | None, Any]]:
    """(external id, prompt) of every non-empty line; Invalid listing each bad line by its number (nothing kept)."""
    found, errors = [], []
    for number, line in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            found.append(_record(line))
        except _Bad as exc:
            errors.append({"line": number, "error": str(exc)})
    if errors:
        raise Invalid(
            {"message": f"{len(errors)} line(s) have errors; no arena was made", "errors": errors[:MAX_ERRORS]}
        )
    if not found:
        raise Invalid("The prompt list is empty")
    if len(found) > limit:
        raise Invalid(f"At most {limit} prompts per arena ({len(found)} given)")
    return found
