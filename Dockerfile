# syntax=docker/dockerfile:1
# Gatehouse image: build with the Rust toolchain, run on a distroless base that has glibc and
# CA certificates but no shell or package manager, as a non-root user.
#
#   docker build -t gatehouse:dev .
#   docker run --rm -p 8080:8080 -v "$PWD/examples:/examples:ro" gatehouse:dev \
#     run --config /examples/gateway.yaml --resources /examples/resources
#
# The binary is dynamically linked against glibc; the build stage is Debian 12 (bookworm) like
# the runtime stage, so the glibc versions match.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# Sources only (.dockerignore keeps target/, tests and the rest out).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
# Registry and target caches survive between builds; the binary is copied out of the cache.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin gatehouse \
 && install -D -m 0755 target/release/gatehouse /out/gatehouse

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/gatehouse /usr/local/bin/gatehouse
# The nonroot user of the distroless image (65532), by number so that runAsNonRoot can verify it.
USER 65532:65532
# Proxy, HTTPS, admin API, metrics.
EXPOSE 8080 8443 8081 9090
# Exec form: no shell is involved (the image has none).
ENTRYPOINT ["/usr/local/bin/gatehouse"]
CMD ["run"]
