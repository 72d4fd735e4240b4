# The steptrace demo in a container: `docker compose up --build` runs it next to Jaeger.
# Configuration comes from the standard OTEL_* variables (see docker-compose.yml).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY scripts/constraints.txt ./
COPY pyproject.toml README.md ./
COPY src ./src
COPY exporters/web ./exporters/web
# The constraints pin the tested OpenTelemetry set (see the file for why).
RUN pip install -c constraints.txt ".[demo]" ./exporters/web

RUN useradd --create-home --uid 10001 steptrace
USER steptrace
WORKDIR /home/steptrace

ENV OTEL_SERVICE_NAME=steptrace-demo
EXPOSE 8765
CMD ["steptrace", "demo", "--host", "0.0.0.0", "--port", "8765"]
