# Wardline container image: a static-ish release binary on a slim Debian base, run as non-root.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY src ./src
COPY crates ./crates
COPY migrations ./migrations
COPY fixtures ./fixtures
COPY benches ./benches
RUN cargo build --release --locked --bin wardline

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/wardline --create-home wardline
COPY --from=build /src/target/release/wardline /usr/local/bin/wardline
USER wardline
WORKDIR /var/lib/wardline
ENV WARDLINE_HTTP_ADDR=0.0.0.0:8080 \
    WARDLINE_MLLP_ADDR=0.0.0.0:2575 \
    WARDLINE_DATA_DIR=/var/lib/wardline
EXPOSE 8080 2575
ENTRYPOINT ["wardline"]
CMD ["serve"]
