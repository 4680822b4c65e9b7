# The image every Deployment in deploy/ runs: the five binaries on Debian slim.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --workspace --bins

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --uid 10001 --create-home roster
COPY --from=build /src/target/release/roster /src/target/release/roster-fetcher \
    /src/target/release/roster-parser /src/target/release/roster-differ \
    /src/target/release/roster-writer /usr/local/bin/
USER 10001
ENTRYPOINT []
CMD ["roster", "--help"]
