#!/bin/bash
# Builds a slim Debian 12 (bookworm) root filesystem with debootstrap into "$1".
# Run by local-vps-images (as root); the caller imports the result with `docker import`.
# Mirror: $MIRROR (default deb.debian.org). The tweaks make it like the official slim image.
set -euo pipefail
ROOT=$1
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
debootstrap --variant=minbase bookworm "$ROOT" "$MIRROR"
cat > "$ROOT/etc/apt/sources.list" <<SRC
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECURITY_MIRROR bookworm-security main
SRC
printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"
chmod +x "$ROOT/usr/sbin/policy-rc.d"
cat > "$ROOT/etc/apt/apt.conf.d/docker-clean" <<'C'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
C
echo 'Acquire::Languages "none";' > "$ROOT/etc/apt/apt.conf.d/docker-no-languages"
echo 'Acquire::GzipIndexes "true"; Acquire::CompressionTypes::Order:: "gz";' > "$ROOT/etc/apt/apt.conf.d/docker-gzip-indexes"
echo 'force-unsafe-io' > "$ROOT/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
echo 'APT::Install-Recommends "false";' > "$ROOT/etc/apt/apt.conf.d/docker-no-recommends"
cat > "$ROOT/etc/dpkg/dpkg.cfg.d/docker-slim" <<'D'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
D
find "$ROOT/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
rm -rf "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/*
find "$ROOT/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb \
       "$ROOT"/var/log/*.log "$ROOT"/var/log/apt/* "$ROOT"/tmp/*
: > "$ROOT/etc/machine-id"
echo "debian" > "$ROOT/etc/hostname"
