# Sourced by the hack/build-*.sh scripts: the one private Go workspace they all build in, so nothing
# touches the user's GOPATH, modules shared between tools (client-go, ...) compile once, and the caches
# survive between builds. Needs TAROT_CACHE; `go` must be on PATH.
command -v go >/dev/null || { echo "error: 'go' is not on PATH; install Go >= 1.26" >&2; exit 1; }
export GOPATH="${TAROT_CACHE}/go"
export GOMODCACHE="${GOPATH}/pkg/mod"
export GOCACHE="${TAROT_CACHE}/go-build"
export GOFLAGS="-p=${GO_BUILD_JOBS:-$(nproc)} -buildvcs=false"
export CGO_ENABLED=0      # static binaries, no C toolchain needed (as the Kubernetes release builds them)
export GOTOOLCHAIN=local
