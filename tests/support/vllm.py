"""Start a real vLLM OpenAI-compatible server (CPU build) on a tiny model that the tests make.

vLLM lives in its own virtualenv (its pins clash with the app's): PREFSTUDIO_TEST_VLLM_PYTHON names its
python, else ~/.cache/prefstudio/vllm-venv/bin/python is used when present (.ci/run creates it).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
DEFAULT_VENV_PYTHON = Path.home() / ".cache" / "prefstudio" / "vllm-venv" / "bin" / "python"
MODEL_NAME = "tiny-sft"


def vllm_python() -> Path | None:
    configured = os.environ.get("PREFSTUDIO_TEST_VLLM_PYTHON")
    if configured:
        return Path(configured)
    return DEFAULT_VENV_PYTHON if DEFAULT_VENV_PYTHON.exists() else None


def build_tiny_model(python: Path, out: Path) -> Path:
    subprocess.run([str(python), str(HERE / "make_tiny_model.py"), str(out)], check=True, capture_output=True)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def vllm_server(python: Path, model_dir: Path, log_path: Path, *, ready_timeout_s: float = 900) -> Iterator[str]:
    """Yields the base URL once /v1/models answers; the server is stopped afterwards."""
    port = free_port()
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_LOGGING_LEVEL": "WARNING"}
    cmd = [
        str(python),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_dir),
        "--served-model-name",
        MODEL_NAME,
        "--dtype",
        "float32",
        "--max-model-len",
        "512",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        # On the CPU build, seeded sampling crashes ("CPU Generator does not use offset") when a prompt's
        # prefill is split across steps or served partly from the prefix cache; these keep prefills whole.
        "--no-enable-chunked-prefill",
        "--no-enable-prefix-caching",
        "--max-num-batched-tokens",
        "16384",
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"vLLM exited with {proc.returncode}; log: {log_path}\n{log_path.read_text()[-3000:]}"
                )
            try:
                if httpx.get(base + "/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"vLLM not ready after {ready_timeout_s:.0f} s; log: {log_path}")
            time.sleep(1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
