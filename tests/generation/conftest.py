"""Fixtures for generation: a scriptable fake server (faults) and the real vLLM server (happy paths)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_openai import FakeOpenAI


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def vllm_base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real vLLM server on a tiny random model. Missing vLLM: a failure in CI, a skip elsewhere."""
    import os

    from tests.support import vllm

    python = vllm.vllm_python()
    if python is None or not python.exists():
        message = "vLLM virtualenv not found (set PREFSTUDIO_TEST_VLLM_PYTHON or run .ci/run once)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    work = tmp_path_factory.mktemp("vllm")
    model_dir = vllm.build_tiny_model(python, work / "model")
    log_dir = vllm.HERE.parent.parent / "test-artifacts"
    log_dir.mkdir(exist_ok=True)
    with vllm.vllm_server(python, model_dir, log_dir / "vllm.log") as base:
        yield base
