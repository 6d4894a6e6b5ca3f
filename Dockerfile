# Builds every escucha service into one image; docker-compose.yml picks the command.
# The build stage installs what scripts/deps.sh lists (compiler, libraries, node for the
# dashboard bundle and the sentiment lexicon, Debian packages the language model is trained
# from), so the image is built exactly as a Debian 12 host would build it.
FROM debian:12-slim AS build
WORKDIR /src
COPY . .
RUN apt-get update && scripts/deps.sh \
    && cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DESC_TESTS=OFF -DESC_BENCH=OFF \
    && cmake --build /build -j"$(nproc)" \
    && cmake --install /build --prefix /opt/escucha

FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
        libzmq5 libmsgpackc2 libhiredis0.14 libjansson4 libyajl2 libcurl4 libutf8proc2 \
        libsodium23 libmicrohttpd12 libcairo2 libfontconfig1 fonts-dejavu-core libxml2 libcsv3 \
        ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /var/lib/escucha escucha \
    && install -d -o escucha -g escucha /var/lib/escucha /var/lib/escucha/journal
COPY --from=build /opt/escucha /opt/escucha
COPY examples /etc/escucha/examples
ENV PATH=/opt/escucha/bin:$PATH
USER escucha
WORKDIR /var/lib/escucha
