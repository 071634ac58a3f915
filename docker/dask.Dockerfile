# A Dask scheduler or worker for batch scoring (`recstack score --scheduler tcp://scheduler:8786`): recstack with the
# `dask` extra on python:3.11-slim, CPU onnxruntime and faiss-cpu. Each worker loads the model repository once and
# scores whole chunks in batch mode. The compose file (dask.compose.yaml) mounts build/ at /work/build, the same
# path as the client's, because workers open the data, repository and output folders by the paths the client sends.
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
RUN pip install --no-cache-dir ".[serve,dask]"

WORKDIR /work
USER 65534:65534
EXPOSE 8786 8787
CMD ["dask", "scheduler"]
