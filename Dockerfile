# vidgen in a container: watcher, workers and status page; ComfyUI stays on the host.
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg fonts-noto-cjk \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md config.yaml ./
COPY vidgen ./vidgen
COPY watcher ./watcher
COPY stages ./stages
COPY workflows ./workflows
COPY status ./status
COPY migrations ./migrations
RUN pip install --no-cache-dir .

# The folders users mount; config.yaml's relative paths resolve against /app.
RUN mkdir -p /app/inbox /app/outbox /app/storage
VOLUME ["/app/inbox", "/app/outbox", "/app/storage"]
EXPOSE 8000

CMD ["vidgen", "--config", "/app/config.yaml", "run"]
