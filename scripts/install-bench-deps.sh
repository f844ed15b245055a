#!/usr/bin/env bash
# Extra packages only the side-by-side benchmarks need (not CI): qemu-img's rbd driver
# (qemu-block-extra of exactly qemu-img's version, from bookworm-backports on these machines)
# hyperfine and nbdcopy (libnbd-bin, a reference for convert). Idempotent.
set -euo pipefail
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
want=$(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null || true)
[ -n "$want" ] || { echo "install-bench-deps: qemu-utils is not installed" >&2; exit 1; }
have=$(dpkg-query -W -f='${Version}' qemu-block-extra 2>/dev/null || true)
if [ "$have" != "$want" ]; then
  if ! apt-cache madison qemu-block-extra 2>/dev/null | grep -qF "$want"; then
    # Same mirror as the existing sources, backports suite.
    mirror=$( (awk '/^URIs:/ {print $2}' /etc/apt/sources.list.d/*.sources 2>/dev/null; \
               awk '/^deb / {print $2}' /etc/apt/sources.list 2>/dev/null) | grep -v security | head -n 1 || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$mirror" \
      | $SUDO tee /etc/apt/sources.list.d/rbdkit-backports.sources >/dev/null
    $SUDO apt-get update -q >/dev/null
  fi
  $SUDO apt-get install -y -q --no-install-recommends "qemu-block-extra=$want" >/dev/null
fi
for p in hyperfine libnbd-bin; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || $SUDO apt-get install -y -q "$p" >/dev/null 2>&1 || true
done
echo "install-bench-deps: qemu-block-extra $(dpkg-query -W -f='${Version}' qemu-block-extra) matches qemu-utils $want"
