#!/usr/bin/env bash
# Build the Asterisk the live tier (tests/live) runs against, from an official source release, for machines that
# have none. Debian/Ubuntu; run as root (or with sudo) because it installs build dependencies and writes PREFIX.
#
#   tests/live/build-asterisk.sh                      # downloads asterisk-$VERSION.tar.gz from downloads.asterisk.org
#   tests/live/build-asterisk.sh ~/asterisk-22.10.1.tar.gz [pjproject-2.17.tar.bz2]   # local tarballs, no download
#
# Environment: VERSION (22.10.1), PREFIX (/opt/crmtel-asterisk: where the tier looks by default; elsewhere set
# CRMTEL_ASTERISK_PREFIX for the tests), BUILD_DIR (a scratch folder), JOBS (make -j, default: number of CPUs),
# PJPROJECT_TARBALL (the pjproject release Asterisk bundles; fetched by Asterisk's build when not given).
# Modules: the default set whose build dependencies are installed (PJSIP with WebSocket and DTLS-SRTP, app_queue,
# app_mixmonitor, FastAGI, func_curl, cdr_csv, ARI); no sound or music-on-hold downloads, no test modules.
set -euo pipefail

VERSION=${VERSION:-22.10.1}
PREFIX=${PREFIX:-/opt/crmtel-asterisk}
BUILD_DIR=${BUILD_DIR:-$(mktemp -d /tmp/crmtel-asterisk-build.XXXXXX)}
JOBS=${JOBS:-$(nproc)}
RELEASES=https://downloads.asterisk.org/pub/telephony/asterisk/releases
tarball=${1:-}
pjproject=${2:-${PJPROJECT_TARBALL:-}}

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'build-asterisk: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs build dependencies and writes $PREFIX)"
mkdir -p "$BUILD_DIR/cache"

say "build dependencies"
if command -v apt-get >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    build-essential pkg-config bzip2 xz-utils curl ca-certificates patch \
    libjansson-dev libxml2-dev libxslt1-dev libsqlite3-dev libedit-dev uuid-dev libssl-dev libncurses-dev \
    libsrtp2-dev libcurl4-openssl-dev libpq-dev sip-tester >/dev/null
else
  say "no apt-get: install a C toolchain and the -dev packages of jansson, libxml2, libxslt, sqlite3, libedit, uuid,"
  say "openssl, ncurses, libsrtp2, libcurl and libpq, plus sipp, then run this again"
fi

if [ -z "$tarball" ]; then
  say "downloading asterisk-$VERSION.tar.gz from $RELEASES"
  tarball=$BUILD_DIR/cache/asterisk-$VERSION.tar.gz
  curl -fsSL -o "$tarball" "$RELEASES/asterisk-$VERSION.tar.gz"
  curl -fsSL -o "$tarball.sha256" "$RELEASES/asterisk-$VERSION.sha256"
  # The release's checksum file names the file as published.
  (cd "$BUILD_DIR/cache" && sha256sum -c --quiet "asterisk-$VERSION.tar.gz.sha256") \
    || die "checksum of asterisk-$VERSION.tar.gz does not match the release's"
fi
[ -f "$tarball" ] || die "no such tarball: $tarball"
if [ -n "$pjproject" ]; then
  [ -f "$pjproject" ] || die "no such pjproject tarball: $pjproject"
  cp "$pjproject" "$BUILD_DIR/cache/"   # Asterisk's bundled-pjproject build takes it from the download cache
fi

say "unpacking $(basename "$tarball")"
src=$BUILD_DIR/src
rm -rf "$src" && mkdir -p "$src"
tar -xf "$tarball" -C "$src" --strip-components=1
cd "$src"
[ -x ./configure ] || die "$tarball does not look like an Asterisk source release (no ./configure)"

say "configure (prefix $PREFIX, bundled pjproject)"
nice ./configure --prefix="$PREFIX" --with-pjproject-bundled --with-download-cache="$BUILD_DIR/cache" \
  --with-jansson --without-libjwt >"$BUILD_DIR/configure.log" 2>&1 \
  || die "configure failed: see $BUILD_DIR/configure.log"

say "module selection"
make menuselect.makeopts >/dev/null
for category in MENUSELECT_CORE_SOUNDS MENUSELECT_EXTRA_SOUNDS MENUSELECT_MOH MENUSELECT_TESTS; do
  menuselect/menuselect --disable-category "$category" menuselect.makeopts >/dev/null
done
# Binary codec downloads and modules needing services these machines do not have.
for module in codec_opus codec_silk codec_siren7 codec_siren14 codec_g729a res_digium_phone res_stir_shaken; do
  menuselect/menuselect --disable "$module" menuselect.makeopts >/dev/null 2>&1 || true
done
for module in app_queue app_dial app_mixmonitor res_agi func_curl cdr_csv chan_pjsip res_http_websocket app_followme; do
  menuselect/menuselect --enable "$module" menuselect.makeopts >/dev/null 2>&1 || true
done

say "make -j$JOBS (10-20 minutes on 2 cores)"
nice make -j"$JOBS" >"$BUILD_DIR/make.log" 2>&1 || die "make failed: see $BUILD_DIR/make.log"
make install >"$BUILD_DIR/install.log" 2>&1 || die "make install failed: see $BUILD_DIR/install.log"

if [ "$PREFIX" != /usr ] && [ -d /etc/ld.so.conf.d ]; then
  echo "$PREFIX/lib" >/etc/ld.so.conf.d/crmtel-asterisk.conf
  ldconfig
fi
for needed in chan_pjsip app_queue app_mixmonitor res_agi cdr_csv; do
  [ -f "$PREFIX/lib/asterisk/modules/$needed.so" ] || die "$needed.so was not built (missing build dependency?)"
done
"$PREFIX/sbin/asterisk" -V >&2
[ "$PREFIX" = /opt/crmtel-asterisk ] || say "set CRMTEL_ASTERISK_PREFIX=$PREFIX for the live tier"
echo "$PREFIX"
