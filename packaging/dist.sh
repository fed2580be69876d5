#!/usr/bin/env bash
# packaging/dist.sh — the release artefacts, in dist/ (`make dist`):
#
#   traceless_<version>_linux_<arch>.tar.gz   server, agent and CLI, the
#                                             systemd units and example configs
#   traceless-server_<pkgver>_<arch>.deb/.rpm the server package (and the CLI)
#   traceless-agent_<pkgver>_<arch>.deb/.rpm  the node agent package
#   <command>_<version>_linux_<arch>.cdx.json CycloneDX SBOM of each binary
#   SHA256SUMS                                of all of the above
#
# for linux/amd64 and linux/arm64 (ARCHES overrides). The binaries are
# static (CGO_ENABLED=0: the SQLite driver is pure Go). The build is
# reproducible: -trimpath, no build ID, no VCS stamp, every timestamp is
# SOURCE_DATE_EPOCH (the commit's time), archives list files sorted with
# fixed owners; two builds of one commit give the same SHA256SUMS, which
# .ci/run checks.
#
# What is built is the commit (HEAD), from a clean clone of it: changes
# not committed are not in it.
#
# Settings (environment): DIST_DIR (default dist), ARCHES, VERSION,
# SOURCE_DATE_EPOCH, DIST_TOOLS (where the release tools are built),
# DIST_GOCACHE (a Go build cache for the commands only: .ci/run's second,
# reproducibility build uses an empty one, so that nothing is reused).
set -euo pipefail

cd "$(dirname "$0")/.."
out=$(realpath -m "${DIST_DIR:-dist}")
commit=$(git rev-parse HEAD)
version=${VERSION:-$(git describe --tags --always "$commit")}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct "$commit")}
read -r -a arches <<<"${ARCHES:-amd64 arm64}"
commands=(traceless-server traceless-agent traceless)

# Package versions must start with a digit and may not hold "-" (rpm):
# v1.2.3-4-gabc → 1.2.3.4.gabc; an untagged commit → 0.0.0~git<hash>.
if [[ $version =~ ^v?[0-9]+\.[0-9]+\.[0-9]+ ]]; then
	pkgversion=${version#v}
else
	pkgversion=0.0.0~git$version
fi
pkgversion=${pkgversion//-/.}
mtime=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 022
git clone -q --no-hardlinks . "$work/src"
git -C "$work/src" checkout -q --detach "$commit"
cd "$work/src"

# The release tools, pinned in tools/distbin (a module of its own).
tools=${DIST_TOOLS:-$(go env GOPATH)/traceless-dist-tools}
mkdir -p "$tools"
go -C tools/distbin build -trimpath -o "$tools/" \
	github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod github.com/goreleaser/nfpm/v2/cmd/nfpm

rm -rf "$out"
mkdir -p "$out"

# stamp sets every file under $1 to SOURCE_DATE_EPOCH.
stamp() { find "$1" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +; }

for arch in "${arches[@]}"; do
	name=traceless_${version}_linux_${arch}
	stage=$work/$arch
	mkdir -p "$stage/bin" "$stage/systemd"
	for cmd in "${commands[@]}"; do
		echo "build $cmd linux/$arch"
		GOCACHE=${DIST_GOCACHE:-$(go env GOCACHE)} CGO_ENABLED=0 GOOS=linux GOARCH=$arch GOFLAGS=-buildvcs=false \
			go build -trimpath \
			-ldflags "-s -w -buildid= -X github.com/traceless-vpn/traceless/internal/version.version=$version" \
			-o "$stage/bin/$cmd" "./cmd/$cmd"
		CGO_ENABLED=0 GOOS=linux GOARCH=$arch GOFLAGS=-buildvcs=false \
			"$tools/cyclonedx-gomod" app -json -noserial -notimestamp -licenses -main "cmd/$cmd" \
			-output "$out/${cmd}_${version}_linux_${arch}.cdx.json" . 2>"$work/sbom.log" ||
			{ cat "$work/sbom.log" >&2; exit 1; }
	done

	# The units as packaged: the binaries in /usr/bin, and the server
	# under the static system user that the package creates (the unit in
	# configs/ uses a dynamic one).
	sed -e 's#/usr/local/bin/#/usr/bin/#g' configs/traceless-agent.service >"$stage/systemd/traceless-agent.service"
	sed -e 's#/usr/local/bin/#/usr/bin/#g' \
		-e 's#^DynamicUser=yes$#User=traceless\nGroup=traceless#' \
		configs/traceless-server.service >"$stage/systemd/traceless-server.service"

	# The archive.
	tree=$work/tar/$name
	mkdir -p "$tree/configs"
	install -m 0755 "$stage"/bin/* "$tree/"
	install -m 0644 README.md "$tree/"
	install -m 0644 configs/* "$tree/configs/"
	stamp "$work/tar"
	tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
		--format=gnu -C "$work/tar" -cf - "$name" | gzip -9n >"$out/$name.tar.gz"
	rm -rf "$work/tar"

	# deb and rpm.
	stamp "$stage"
	for pkg in traceless-server traceless-agent; do
		sed -e "s#@MTIME@#$mtime#" -e "s#@STAGE@#$stage#" "packaging/nfpm/$pkg.yaml" >"$work/$pkg.yaml"
		for packager in deb rpm; do
			ARCH=$arch PKG_VERSION=$pkgversion STAGE=$stage \
				"$tools/nfpm" package --config "$work/$pkg.yaml" --packager "$packager" --target "$out/" >/dev/null
		done
	done
done

(cd "$out" && find . -maxdepth 1 -type f ! -name SHA256SUMS -printf '%f\n' | LC_ALL=C sort | xargs sha256sum >SHA256SUMS)
echo "dist: $version ($pkgversion), SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH"
cat "$out/SHA256SUMS"
