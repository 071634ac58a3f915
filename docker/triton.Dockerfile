# Triton on a GPU host: the NGC image of the same release the tests run (Triton 2.51 = NGC 24.10), with its
# native onnxruntime backend (the Python stand-in of ensemble/backends is for CPU-only development machines),
# faiss-gpu for retrieval, and the code of the python models (retrieve, rerank, similar, trending).
#
# The repository is built on the host with KIND_GPU instance groups and mounted at /models:
#   recstack build-repo --device gpu && docker compose -f docker/compose.yaml up
FROM nvcr.io/nvidia/tritonserver:24.10-py3

# The python backend stub of this image runs Python 3.10, so the serving modules keep to 3.10 and these
# pins are the newest that install there beside numpy<2 (numpy 2 makes the stub return empty outputs;
# faiss-gpu-cu12 from 1.13 requires numpy 2; polars 2.1 needs Python 3.11).
RUN python3 -m pip install --no-cache-dir \
        numpy==1.26.4 \
        polars==2.0.0 \
        pyarrow==25.0.1 \
        faiss-gpu-cu12==1.12.0

# The python models import recstack.ensemble (and the vocabulary constants of recstack.preprocessing, the ranker's
# objective names of the torch-free recstack.training.config): the folders go where the package layout puts them,
# on PYTHONPATH, without installing the rest of recstack.
WORKDIR /opt/recstack
COPY recstack/__init__.py recstack/devices.py recstack/
COPY ensemble/ recstack/ensemble/
COPY preprocessing/__init__.py preprocessing/vocabulary.py preprocessing/layout.py recstack/preprocessing/
COPY preprocessing/config.py preprocessing/schema.py recstack/preprocessing/
COPY training/__init__.py training/config.py recstack/training/
COPY model_repository/ model_repository/
# One compute thread per python-model stub (FAISS's OpenMP, numpy's OpenBLAS): idle threads of several stubs spin
# on the cores the others need (benchmarks/README.md, "Measured design decisions"). More
# throughput comes from instance_group counts. The GPU does the heavy lifting on this image anyway.
ENV PYTHONPATH=/opt/recstack \
    OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    MKL_NUM_THREADS=1

EXPOSE 8000 8001 8002
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s \
    CMD ["curl", "-fsS", "http://localhost:8000/v2/health/ready"]
CMD ["tritonserver", "--model-repository=/models", "--model-control-mode=explicit", "--load-model=*", "--exit-timeout-secs=5", "--allow-metrics=true"]
