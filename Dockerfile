# One image for every allim process; the command picks the service:
#   docker run allim gateway | broadcaster --role sender | analytics | sandbox | migrate | topics
# Check it by hand with `.venv/bin/hadolint Dockerfile` (tests/deploy runs it in `make test`).

# Stage 1: the virtual environment, built where pip and the build backend may write.
FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
# compiled here (.pyc), so the read-only root filesystem of the running image needs no cache
RUN /opt/venv/bin/pip install --no-cache-dir .

# Stage 2: the runtime: the interpreter, the venv and the migrations; no pip cache, no sources.
FROM python:3.11-slim-bookworm

# Every listening setting bound to all interfaces: inside a container, 127.0.0.1 (the
# default outside one) is unreachable from the container's published port or its Service.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ALLIM_MIGRATIONS_DIR=/app/migrations \
    ALLIM_LOG_JSON=true \
    ALLIM_GATEWAY_HOST=0.0.0.0 \
    ALLIM_BROADCASTER_METRICS_HOST=0.0.0.0 \
    ALLIM_ANALYTICS_METRICS_HOST=0.0.0.0 \
    ALLIM_SANDBOX_HOST=0.0.0.0

# a numeric uid and gid: Kubernetes' runAsNonRoot can only verify a number
RUN groupadd --system --gid 10001 allim \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin allim
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY migrations ./migrations

USER 10001:10001
EXPOSE 8000 8100 9101 9102
# The gateway's liveness, for the default command. Compose gives the other services a check
# of their own; Kubernetes ignores this one and uses the probes in deploy/kubernetes.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('ALLIM_GATEWAY_PORT', '8000'), timeout=2)"]
ENTRYPOINT ["allim"]
CMD ["gateway"]
