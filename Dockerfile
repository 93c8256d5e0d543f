FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY configs ./configs
RUN pip install .
# Everything runs as an unprivileged user: results land in /app/smptune-results, the
# machine's data cache in /cache, the data is mounted read-only at /data.
RUN useradd --create-home --uid 1000 smptune \
    && mkdir -p /app/smptune-results /cache /data \
    && chown smptune /app/smptune-results /cache
USER smptune
# Flower (`producer flower --address 0.0.0.0`)
EXPOSE 5555
CMD ["workers", "start"]
