# The edge gateway (cmd/edge) as a small static image.
#
#   docker build -t feedgate-edge .
#   docker run --rm -p 8080:8080 feedgate-edge          # embedded backbone, one edge
#
# Configuration is by EDGE_* environment variables (docs/operations.md).
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 .
# (the build stage runs natively and cross-compiles; CGO is off).

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src

# Dependencies first: this layer is rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download && go mod verify

COPY . .
ARG TARGETOS
ARG TARGETARCH
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o /out/edge ./cmd/edge

# distroless/static: no shell, no package manager; CA certificates (needed for
# the real Pub/Sub endpoint) and tzdata included. The :nonroot tag runs as
# uid/gid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/edge /edge
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/edge"]
