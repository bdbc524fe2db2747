# syntax=docker/dockerfile:1.7
#
# roitrack server image: `docker compose up` (docker-compose.yml) or
#   docker build -t roitrack:0.1.0 .
#   docker run --gpus '"device=0"' -p 50051:50051 \
#     -v roitrack-weights:/weights:ro -v $PWD/deploy/config/roitrack.toml:/etc/roitrack/roitrack.toml:ro roitrack:0.1.0
#
# Base image: a plain Python 3.11 Debian slim, not nvidia/cuda. torch==2.14.1 from PyPI is the CUDA 13.0 (cu130)
# build and brings its CUDA runtime, cuBLAS, cuDNN 9 and NCCL as pip wheels (cuda-toolkit, nvidia-cudnn-cu13, ...),
# so an nvidia/cuda:13.0.x-cudnn-runtime base would only ship a second copy of the same libraries (~3 GB) and a
# different Python (3.12 on ubuntu24.04). The one thing the wheels cannot bring is the kernel driver's user-space
# part (libcuda.so, libnvidia-ml.so): the NVIDIA Container Toolkit mounts it from the host when the container is
# started with a GPU (compose: deploy.resources.reservations.devices; docker run: --gpus). CUDA 13.0 needs a host
# driver >= 580. The same image runs on CPU (no GPU requested): torch falls back, device "auto" picks cpu.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# Optional extras of pyproject.toml baked into the image. openvino: the inference backend that `--backend auto`
# picks on CPU hosts (bf16 on AMX / AVX-512 BF16 CPUs: 5-7x the fp32 PyTorch forward; docs/performance.md). A GPU
# host runs torch fp16 whatever is installed, so a GPU-only image can leave it out
# (--build-arg ROITRACK_EXTRAS=reid). reid: onnxruntime, for `serve --reid-model` (docs/reid.md).
ARG ROITRACK_EXTRAS=openvino,reid

# ---------------------------------------------------------------------------------------------------- build
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/roitrack && /opt/roitrack/bin/pip install --upgrade pip setuptools wheel

# Dependencies first (torch is most of the image): this layer is rebuilt only when pyproject.toml or the lock
# changes. The requirements are the project's dependencies plus those of the extras named in ROITRACK_EXTRAS
# (default openvino + reid: the fast CPU inference backend, and onnxruntime for `serve --reid-model`), at the
# versions of requirements/lock.txt (what `make install` and CI test; `make lock` refreshes it).
ARG ROITRACK_EXTRAS
COPY pyproject.toml ./
COPY requirements/lock.txt ./requirements/lock.txt
RUN python -c "import os, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
extras = [e for e in os.environ.get('ROITRACK_EXTRAS', '').split(',') if e.strip()]; \
print('\n'.join(p['dependencies'] + [d for e in extras for d in p['optional-dependencies'][e.strip()]]))" \
      > /tmp/requirements.txt \
 && /opt/roitrack/bin/pip install --no-cache-dir -c requirements/lock.txt -r /tmp/requirements.txt

# The package itself, built as a wheel and installed (no source tree at run time). Same list as
# [tool.setuptools.packages.find] in pyproject.toml (tests/integration/test_deploy_docker.py checks it).
COPY README.md ./
COPY tracker_core ./tracker_core
COPY server ./server
COPY client ./client
COPY training ./training
COPY roitrack_cli ./roitrack_cli
COPY roitrack_api ./roitrack_api
COPY benchmarks ./benchmarks
RUN /opt/roitrack/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
 && /opt/roitrack/bin/pip install --no-cache-dir --no-deps /wheels/roitrack-*.whl \
 && /opt/roitrack/bin/roitrack --help > /dev/null \
 && /opt/roitrack/bin/roitrack health --help > /dev/null

# -------------------------------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="roitrack" \
      org.opencontainers.image.description="Real-time multi-object tracking over bidirectional gRPC (YOLOv7 + ROI Align embeddings + Kalman/Hungarian)" \
      org.opencontainers.image.licenses="Apache-2.0"

# libglib2.0-0: needed by OpenCV's video I/O even in the headless wheel. Nothing else: CUDA comes with torch's wheels.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*

# Non-root user; /weights and /runs exist and belong to it, so named volumes mounted there start writable
# (the `weights` and `train` compose profiles write into them; the server mounts /weights read-only).
RUN groupadd --system --gid 10001 roitrack \
 && useradd --system --uid 10001 --gid roitrack --home-dir /home/roitrack --create-home --shell /usr/sbin/nologin roitrack \
 && mkdir -p /weights /runs /etc/roitrack \
 && chown roitrack:roitrack /weights /runs

COPY --from=build /opt/roitrack /opt/roitrack

# OMP_WAIT_POLICY=PASSIVE: PyTorch's idle OpenMP workers sleep instead of spinning (`roitrack` sets it too): on a
# CPU shared with other busy processes spinning workers made the forward many times slower (docs/performance.md).
ENV PATH=/opt/roitrack/bin:${PATH} \
    OMP_WAIT_POLICY=PASSIVE \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    ROITRACK_CONFIG=/etc/roitrack/roitrack.toml

USER roitrack
WORKDIR /home/roitrack

# Weights and configuration are mounted, never baked in.
VOLUME ["/weights"]

# 50051: gRPC (tracking, health, reflection). 9108: Prometheus /metrics (metrics_port in deploy/config/roitrack.toml).
EXPOSE 50051 9108

# The gRPC health service (NOT_SERVING until models are loaded and warmed up, and while draining). Token and TLS CA
# come from ROITRACK_TOKEN / ROITRACK_TLS_CA when set (the health method itself needs no token); the address from
# ROITRACK_HEALTH_SERVER, default localhost:50051 (set it when the config moves the gRPC port).
HEALTHCHECK --interval=15s --timeout=5s --start-period=180s --retries=3 \
  CMD ["roitrack", "health", "--timeout", "3", "--quiet"]

ENTRYPOINT ["roitrack"]
CMD ["serve", "--config", "/etc/roitrack/roitrack.toml"]
