# syntax=docker/dockerfile:1
#
# Traceless: multi-stage build of every command under cmd/.
#
#   docker build -t traceless-server .
#   docker run -d -p 127.0.0.1:8080:8080 -v traceless-data:/data traceless-server
#   docker logs <container>      # the one-time /setup?token=… link
#
# The SQLite driver is pure Go: the binaries are static (CGO_ENABLED=0).

# Matches the go directive in go.mod.
ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
# Build every cmd/* directory that has a main.go: the server, the node
# agent, the CLI and the load driver, and any command added later.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    set -eu; \
    mkdir -p /out; \
    for d in cmd/*/; do \
        [ -f "${d}main.go" ] || continue; \
        name=$(basename "$d"); \
        echo "building $name"; \
        CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/traceless-vpn/traceless/internal/version.version=${VERSION}" -o "/out/$name" "./$d"; \
    done; \
    test -x /out/traceless-server

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin traceless \
    && mkdir -p /data \
    && chown 10001:10001 /data \
    && chmod 0700 /data
COPY --from=build /out/ /usr/local/bin/

ENV TRACELESS_LISTEN=0.0.0.0:8080 \
    TRACELESS_DB=sqlite:///data/traceless.db \
    TRACELESS_SESSION_KEY_FILE=/data/session.key
VOLUME /data
WORKDIR /data
USER 10001:10001
EXPOSE 8080

# The slim image has no curl, and adding it (and its libraries) only for a
# health probe widens the image for little gain. bash is already there and
# can speak enough HTTP/1.0 over /dev/tcp to ask /healthz, which answers 200
# when the store answers. It follows the port in TRACELESS_LISTEN; with
# --tls-cert set, replace it (the probe speaks plain HTTP).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${TRACELESS_LISTEN##*:} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q '^HTTP/1\\.[01] 200'"]

ENTRYPOINT ["/usr/local/bin/traceless-server"]
