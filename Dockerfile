# syntax=docker/dockerfile:1

# Build stage: a static, reproducible binary. It runs on the build host's platform and
# cross-compiles for the target, so a multi-arch build does not emulate the compiler.
FROM --platform=$BUILDPLATFORM golang:1.26.8 AS build
WORKDIR /src

# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .

ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/noderuntime/noderuntime/internal/buildinfo.Version=$VERSION" \
      -o /out/noderuntime ./cmd/noderuntime

# Final stage: no shell, no package manager, CA certificates and tzdata only. Kubernetes
# probes /healthz and /readyz, so the image has no HEALTHCHECK.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/noderuntime /noderuntime
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/noderuntime"]
CMD ["serve"]
