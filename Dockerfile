FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY configs ./configs
RUN pip install .
# workers run as an unprivileged user; results land in /app/smptune-results
RUN useradd --create-home smptune && mkdir -p /app/smptune-results \
    && chown smptune /app/smptune-results
USER smptune
CMD ["workers", "start"]
