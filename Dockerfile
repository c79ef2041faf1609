# prefstudio app, worker and trainer (one image; the command differs). The trainer's image is built with
# --build-arg EXTRAS=train (torch, TRL, transformers, datasets).
FROM python:3.11-slim
ARG EXTRAS=""
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /srv/prefstudio
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
RUN pip install -e ".${EXTRAS:+[$EXTRAS]}" \
    && useradd --system --uid 10001 prefstudio \
    && mkdir -p /data && chown prefstudio /data
USER prefstudio
EXPOSE 8000
CMD ["sh", "-c", "prefstudio db upgrade && prefstudio serve --host 0.0.0.0 --port 8000"]
