# The FastAPI facade (recommendations, events, ranking, health, metrics) in front of Triton and Redis.
# It installs the `serve` extra only: no torch, no ONNX exporter, no Triton server (tests/client/api/
# test_without_torch.py runs the facade with torch unimportable). The stage folders are copied because they make up
# the one `recstack` package that pip installs; the facade imports only what it serves with.
# The prepared dataset (id maps, known histories) is mounted at /data: build/data/<dataset> on the host; items added
# through the API go to /ingest (a writable volume, read by `recstack build-repo --new-items`).
FROM python:3.11-slim-bookworm

WORKDIR /opt/recstack
COPY pyproject.toml README.md ./
COPY recstack/ recstack/
COPY preprocessing/ preprocessing/
COPY training/ training/
COPY ensemble/ ensemble/
COPY model_repository/ model_repository/
COPY client/ client/
COPY benchmarks/ benchmarks/
# Every dependency is pinned in pyproject.toml; hadolint only sees the local path.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[serve]"

# One compute thread per worker (the in-process engine's FAISS and numpy): scale with workers and replicas.
ENV RECSTACK_FACADE__HOST=0.0.0.0 \
    RECSTACK_FACADE__PORT=8080 \
    RECSTACK_FACADE__TRITON_URL=triton:8001 \
    RECSTACK_FACADE__REDIS_URL=redis://redis:6379/0 \
    RECSTACK_FACADE__DATA=/data \
    RECSTACK_FACADE__INGEST_FILE=/ingest/new_items.jsonl \
    OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1
EXPOSE 8080
USER 65534:65534
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://localhost:8080/health')"]
CMD ["recstack", "serve", "api"]
