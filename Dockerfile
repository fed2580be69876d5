# syntax=docker/dockerfile:1
#
# Traceless images: the control plane (the default target) and the node
# agent, each holding its one static binary on a distroless base.
#
#   docker build -t traceless-server .
#   docker run -d -p 127.0.0.1:8080:8080 -v traceless-data:/data traceless-server
#   docker logs <container>      # the one-time /setup?token=… link
#
#   docker build --target agent -t traceless-agent .
#   # runs with NET_ADMIN and /dev/net/tun: configs/docker-compose.agent.example.yml
#
# The SQLite driver is pure Go: the binaries are static (CGO_ENABLED=0) and
# need nothing from the base but CA certificates and /etc/passwd, which
# distroless/static has. The base is pinned by digest (the tag says what it
# is, the digest decides which image it is); update both together.

# Matches the go directive in go.mod.
ARG GO_VERSION=1.26.8
ARG BASE=gcr.io/distroless/static-debian12:nonroot@sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
# The server and the agent only: the CLI and the load driver are not in
# any image.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    set -eu; \
    mkdir -p /out/data; \
    chmod 0700 /out/data; \
    for cmd in traceless-server traceless-agent; do \
        CGO_ENABLED=0 go build -trimpath -buildvcs=false \
            -ldflags "-s -w -buildid= -X github.com/traceless-vpn/traceless/internal/version.version=${VERSION}" \
            -o "/out/$cmd" "./cmd/$cmd"; \
    done

# The node agent. It configures WireGuard, addresses, routes and nftables
# on the host's network: run it with --network host, --cap-add NET_ADMIN
# (and nothing else), --device /dev/net/tun (the userspace backend, when
# the host has no WireGuard module) and /proc/sys writable for the
# forwarding sysctls; configs/docker-compose.agent.example.yml has all of
# it. Root inside the container, as under systemd; its only state is the
# credential file in /var/lib/traceless-agent.
FROM ${BASE} AS agent
ARG VERSION=dev
ARG REVISION=
LABEL org.opencontainers.image.title="traceless-agent" \
      org.opencontainers.image.description="Traceless node agent: configures a WireGuard node from the control plane. Needs NET_ADMIN, the host network and /dev/net/tun." \
      org.opencontainers.image.source="https://github.com/traceless-vpn/traceless" \
      org.opencontainers.image.documentation="https://github.com/traceless-vpn/traceless#install" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot" \
      org.opencontainers.image.base.digest="sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639"
COPY --from=build /out/traceless-agent /usr/bin/traceless-agent
ENV TRACELESS_AGENT_CREDENTIAL_FILE=/var/lib/traceless-agent/credential.json
VOLUME /var/lib/traceless-agent
USER 0:0
ENTRYPOINT ["/usr/bin/traceless-agent"]

# The control plane (the default target): the server alone, as the
# unprivileged user 10001 (the UID of earlier images, so that their data
# volumes still open), with its SQLite database and session
# key in /data (mode 0700).
FROM ${BASE} AS server
ARG VERSION=dev
ARG REVISION=
LABEL org.opencontainers.image.title="traceless-server" \
      org.opencontainers.image.description="Traceless control plane: a no-logs WireGuard VPN control plane." \
      org.opencontainers.image.source="https://github.com/traceless-vpn/traceless" \
      org.opencontainers.image.documentation="https://github.com/traceless-vpn/traceless#install" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot" \
      org.opencontainers.image.base.digest="sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639"
COPY --from=build /out/traceless-server /usr/bin/traceless-server
COPY --from=build --chown=10001:10001 /out/data /data
ENV TRACELESS_LISTEN=0.0.0.0:8080 \
    TRACELESS_DB=sqlite:///data/traceless.db \
    TRACELESS_SESSION_KEY_FILE=/data/session.key
VOLUME /data
WORKDIR /data
USER 10001:10001
EXPOSE 8080
# No HEALTHCHECK: the image has no shell or HTTP client to run one.
# Orchestrators probe GET /healthz (alive) and GET /readyz (can take
# writes) on the listen port; the Helm chart in charts/traceless does.
ENTRYPOINT ["/usr/bin/traceless-server"]
