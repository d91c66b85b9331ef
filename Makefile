# nos: build, demo, tests and benchmarks. See README.md.
GO      ?= go
BIN     := bin
NOS     := $(BIN)/nos
PORT    ?= 8080

.PHONY: all build install deps test-deps demo test test-unit fuzz bench clean

all: build

# nos-init is static and linux/amd64 whatever the host: it runs in the guest.
# nos and nos-monitor get one build stamp: nos starts the nos-monitor beside
# it only when their stamps agree (internal/buildstamp).
STAMP   := $(shell date +%s%N)
STAMPED := -ldflags='-X github.com/nosproject/nos/internal/buildstamp.Stamp=$(STAMP)'
build:
	CGO_ENABLED=0 $(GO) build -trimpath $(STAMPED) -o $(BIN)/nos ./cmd/nos
	CGO_ENABLED=0 $(GO) build -trimpath $(STAMPED) -o $(BIN)/nos-monitor ./cmd/nos-monitor
	ln -sf nos $(BIN)/nos-runtime
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags='-s -w -buildid=' -o $(BIN)/nos-init ./cmd/nos-init

install:
	CGO_ENABLED=0 $(GO) install -trimpath $(STAMPED) ./cmd/nos ./cmd/nos-monitor
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) install -trimpath -ldflags='-s -w -buildid=' ./cmd/nos-init
	ln -sf nos "$$($(GO) env GOPATH)/bin/nos-runtime"

deps: build
	NOS=$(NOS) ./scripts/deps.sh

# What the tests need beyond deps: nos's own kernels (the e2e tests boot
# them): without networking, with networking, with networking and block
# devices (root disks), and for UEFI disk exports (cloud), in one source
# tree (each after the first compiles only what its options change); the
# last, net, is the default. Then the Debian packages of the software the
# tests run as nos images (mkfs.erofs makes their root disks).
test-deps: deps
	$(NOS) kernel build none net,blk blk,cloud,net net
	NOS=$(NOS) ./scripts/test-packages.sh

# nos's own kernel: compiled from Debian's linux-source with the fragments in
# kernel/config (about 7 minutes on 2 CPUs; instant once built), then the
# default for nos build. Installs the build tools it needs when run as root.
.PHONY: kernel
kernel: build
	$(NOS) kernel build

# Build the example HTTP server into an image and run it in the foreground,
# on nos's own kernel: built on first use (once; cached afterwards).
demo: deps
	@$(NOS) kernel ls | awk '$$1 == "*" && $$4 == "built" {found=1} END {exit !found}' || { \
		echo "make demo: building nos's own kernel first, once (about 5 minutes on 2 CPUs; cached afterwards), so that the example is the small image nos makes by default"; \
		$(NOS) kernel build; }
	$(NOS) build -t httpserver ./examples/httpserver
	@echo
	@echo "Starting the example: open http://127.0.0.1:$(PORT)/ (curl http://127.0.0.1:$(PORT)/); Ctrl-C stops it."
	@echo
	$(NOS) run -p $(PORT):8080 httpserver

# The whole test suite: unit tests, fuzz seeds, and integration tests that
# boot real VMs under QEMU.
test: test-deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 35m ./...

# The crash-safety harness's long form (issue 16): 300 rounds of nos
# build, tag, rmi, volume create and system prune killed at random
# moments, nos system check after each.
.PHONY: stress
STRESS_ROUNDS ?= 300
stress: build
	NOS_STRESS_ROUNDS=$(STRESS_ROUNDS) $(GO) test -count=1 -timeout 60m -run 'TestCrashSafety' -v ./e2e

test-unit:
	$(GO) test -short ./...

# Run each fuzzer for a while (FUZZTIME per target).
FUZZTIME ?= 30s
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

bench: deps
	$(GO) run ./bench -runs 7

# nos against a conventional Debian VM (debootstrap, systemd) and a
# do-nothing floor: boot time, size, minimum memory. Needs nos's own kernel
# (make kernel) and root for debootstrap; the Debian root file system is
# cached under ~/.cache/nos-bench. Takes 30 minutes or more under TCG.
.PHONY: bench-compare
bench-compare: deps
	$(GO) run ./bench -compare -runs 10

# Disk exports: sizes, export time, q35+OVMF boot vs microvm, minimum
# memory on q35 (issue 13).
.PHONY: bench-export
bench-export: build
	NOS=$(NOS) ./scripts/bench-export.sh

# TCG's translation buffer sizes side by side (issue 15).
.PHONY: bench-tcg-buffer
bench-tcg-buffer: build
	./scripts/bench-tcg-buffer.sh

# Minimum guest memory of the example, by bisection, for one or more nos
# binaries (issue 15): make bench-memory NOSES="/tmp/old/bin/nos bin/nos".
.PHONY: bench-memory
bench-memory: build
	./scripts/bench-memory.sh

# How many idle instances this host holds (issue 15, item 4).
.PHONY: bench-capacity
bench-capacity: build
	./scripts/bench-capacity.sh

# The network path (issue 15, item 5): nginx and redis through QEMU's slirp
# and through passt, rounds interleaved.
.PHONY: bench-network
bench-network: deps
	@command -v passt >/dev/null || apt-get install -y -q passt
	$(GO) run ./bench -network -runs 5

# The app in the initramfs or on a root disk (nos build --root-disk): boot
# to first answer, side by side (issue 15, item 1).
.PHONY: bench-layout
bench-layout: build
	./scripts/bench-layout.sh

# The initramfs LZ4 or gzip'd: boot to first answer, side by side
# (issue 15, item 2).
.PHONY: bench-initramfs
bench-initramfs: build
	./scripts/bench-initramfs.sh

# Two sets of built kernels side by side, boot to first answer (issue 15):
# make bench-kernels OLD=/tmp/kernels-before [NEW=DIR] [ROUNDS=7].
.PHONY: bench-kernels
bench-kernels: build
	./scripts/bench-kernels.sh

# Warm starts from a saved state against cold boots (issue 15, item 3).
.PHONY: bench-snapshot
bench-snapshot: build
	./scripts/bench-snapshot.sh

# Load (issue 16): concurrent detached instances, sequential run --rm
# leaks, racing commands (PARALLEL=50 MEM=64 SEQUENTIAL=500 RACES=100).
.PHONY: stress-load
stress-load: build
	./scripts/stress-load.sh

# nos-runtime under podman: host memory and idle CPU of one container
# (issue 14; root, podman).
.PHONY: bench-runtime
bench-runtime: build
	./scripts/bench-runtime.sh

# Volumes and host directories, from inside the guest vs the host (issue 10).
.PHONY: bench-data
bench-data: build
	NOS=$(NOS) ./scripts/bench-data.sh

# Private networks vs user-mode networking vs native (issue 11; root).
.PHONY: bench-net
bench-net: build
	NOS=$(NOS) ./scripts/bench-net.sh

# Push and pull to a loopback registry vs crane and a plain HTTP copy
# (issue 12; no VM involved).
.PHONY: bench-registry
bench-registry: build
	NOS=$(NOS) ./scripts/bench-registry.sh

# nos compose up of the e2e's two-service application (issue 11; root).
.PHONY: bench-compose
bench-compose: build
	NOS=$(NOS) ./scripts/bench-compose.sh

clean:
	rm -rf $(BIN)
