# Builds every escucha service into one image; docker-compose.yml picks the command.
FROM debian:12-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config libzmq3-dev libmsgpack-dev libhiredis-dev \
        libjansson-dev libcurl4-openssl-dev libutf8proc-dev libsodium-dev libmicrohttpd-dev libcairo2-dev libxml2-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DESC_TESTS=OFF \
    && cmake --build /build -j"$(nproc)" \
    && cmake --install /build --prefix /opt/escucha

FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
        libzmq5 libmsgpackc2 libhiredis0.14 libjansson4 libcurl4 libutf8proc2 libsodium23 \
        libmicrohttpd12 libcairo2 fonts-dejavu-core libxml2 \
        ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/escucha escucha
COPY --from=build /opt/escucha /opt/escucha
COPY examples /etc/escucha/examples
ENV PATH=/opt/escucha/bin:$PATH
USER escucha
WORKDIR /var/lib/escucha
