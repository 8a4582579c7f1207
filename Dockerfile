# One image for every allim process; the command picks the service:
#   docker run allim gateway | broadcaster | analytics | sandbox | migrate
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    ALLIM_MIGRATIONS_DIR=/app/migrations ALLIM_LOG_JSON=true

RUN useradd --create-home --uid 10001 allim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY migrations ./migrations
RUN pip install --no-compile . && rm -rf /root/.cache

USER allim
ENTRYPOINT ["allim"]
CMD ["gateway"]
