# seedgrid: CUDA-capable runtime image. torch's PyPI wheels carry their own CUDA libraries, so a slim
# Python base is enough; the host needs an NVIDIA driver and the NVIDIA Container Toolkit.
#   docker build -t seedgrid .
#   docker run --gpus all -e DISCORD_TOKEN -v ./config.toml:/config/config.toml:ro \
#              -v hf-cache:/cache/huggingface -v torch-cache:/cache/torch -v seedgrid-data:/data seedgrid
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/cache/huggingface \
    TORCHINDUCTOR_CACHE_DIR=/cache/torch/inductor

WORKDIR /app
# torch first (its own layer: large, rarely changes), then the rest of the dependencies.
ARG TORCH_SPEC="torch>=2.4"
RUN pip install "${TORCH_SPEC}"
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
RUN pip install .

# Non-root user; the model cache, torch.compile's kernels (model.compile: a restart reuses them instead of
# compiling for minutes) and the SQLite state live on volumes.
RUN useradd --create-home --uid 10001 seedgrid \
 && mkdir -p /cache/huggingface /cache/torch /data /config \
 && chown -R seedgrid:seedgrid /cache /data
USER seedgrid
VOLUME ["/cache/huggingface", "/cache/torch", "/data"]
# Relative paths in the config (database = "seedgrid.db", output_dir) resolve under /data.
WORKDIR /data

# Health: the bot (and a worker) serve /healthz and /readyz on the container's own loopback, unless
# [metrics] listen in the config says where (e.g. "0.0.0.0:9400" to let Prometheus scrape /metrics).
# `seedgrid check --ready` asks /readyz there: the gateway connected, the model loaded (or a worker
# alive), the database writable, and the event loop answering. The start period covers the first
# start's model download.
ENV SEEDGRID_METRICS_LISTEN=127.0.0.1:9400
HEALTHCHECK --interval=30s --timeout=15s --start-period=10m --retries=3 \
    CMD ["seedgrid", "check", "--ready", "--config", "/config/config.toml"]

# The token comes from the environment (DISCORD_TOKEN), the config from a mounted file.
ENTRYPOINT ["seedgrid"]
CMD ["run", "--config", "/config/config.toml"]
