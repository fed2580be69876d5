# Traceless. `make test` is the test command that README.md documents and
# .ci/run calls; the other targets are conveniences.

GO ?= go
# The SQLite driver is pure Go: the commands build with CGO_ENABLED=0 and
# link statically. The tests run with -race, which needs cgo.

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/traceless-vpn/traceless/internal/version.version=$(VERSION)

.PHONY: all build dist test vet fmt-check bench run clean

all: build

# build compiles every command under cmd/ into bin/.
build:
	@mkdir -p bin
	@for d in cmd/*/; do \
		if [ -f "$$d/main.go" ]; then \
			echo "$(GO) build -o bin/$$(basename $$d) ./$$d"; \
			CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/$$(basename $$d) ./$$d || exit 1; \
		fi; \
	done

# dist builds the release artefacts of the commit (HEAD) into dist/:
# archives, deb and rpm packages and SBOMs for linux/amd64 and linux/arm64,
# and SHA256SUMS (packaging/dist.sh; reproducible, see there).
dist:
	bash packaging/dist.sh

# test is what CI runs: vet, then every test with the race detector.
test: vet
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# bench reproduces BENCHMARKS.md.
bench:
	$(GO) test ./controlplane -run '^$$' -bench . -benchmem -benchtime 3s -count 6

# run starts the control plane on embedded SQLite in ./data.
run:
	$(GO) run ./cmd/traceless-server

clean:
	rm -rf bin dist
