# prefstudio app and worker (one image; the command differs).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /srv/prefstudio
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
RUN pip install -e . && useradd --system --uid 10001 prefstudio
USER prefstudio
EXPOSE 8000
CMD ["sh", "-c", "prefstudio db upgrade && prefstudio serve --host 0.0.0.0 --port 8000"]
