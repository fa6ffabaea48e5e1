# syntax=docker/dockerfile:1

# mlsidecar: reverse-proxy sidecar in front of OpenSearch.
#   docker build -t mlsidecar:dev .
#   docker run --rm -p 9201:9201 -p 9202:9202 -e MLSIDECAR_UPSTREAM=http://opensearch:9200 mlsidecar:dev

# The builder runs on the build host's platform and cross-compiles, so multi-arch builds
# (docker buildx build --platform linux/amd64,linux/arm64) need no emulation.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src

# Dependencies first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
ARG TARGETOS
ARG TARGETARCH
# CGO off: a static binary that runs on distroless/static (no libc).
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /out/mlsidecar ./cmd/mlsidecar

# static-debian12 carries CA certificates, /etc/passwd and tzdata, nothing else: no shell,
# no package manager. The :nonroot tag runs as uid/gid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mlsidecar /mlsidecar
USER 65532:65532
# 9201: proxy + ML Commons API; 9202: /metrics, /-/healthy, /-/ready, /debug/pprof.
EXPOSE 9201 9202
ENTRYPOINT ["/mlsidecar"]
