#!/usr/bin/env bash
# Builds pg_dump, pg_restore and pg_dumpall of one PostgreSQL major from its pinned source tarball into
# <out>/<major>/{bin,lib}, with every library they load except base glibc, and stdout-buffer.c (beside
# this script) linked in. The one build of the
# recipe: the Dockerfile runs it on Amazon Linux 2023, the construct's local path runs it on a Debian machine
# (native or cross) against Debian's libraries unpacked under DEPS_ROOT.
#
#   build.sh TARBALL SHA256 MAJOR OUT
#
# Environment (all optional):
#   HOST        GNU triple to cross-compile for (e.g. aarch64-linux-gnu); unset builds natively
#   CC, STRIP, READELF   the toolchain (default: ${HOST}-gcc… when HOST is set, else gcc…)
#   DEPS_ROOT   a folder holding usr/include and usr/lib/<triple> of OpenSSL, zlib, lz4, zstd
#   LIB_PATH    colon-separated folders to take the needed libraries from
#   WORK        scratch folder (default: a fresh temporary one)
#   JOBS        make's parallelism (default: the number of processors)
set -euo pipefail

tarball=$1 sha256=$2 major=$3 out=$4
recipe=$(cd "$(dirname "$0")" && pwd)
prefix=/opt/pg/$major
work=${WORK:-$(mktemp -d)}
jobs=${JOBS:-$(nproc)}
if [ -n "${HOST:-}" ]; then
  tool_prefix=$HOST-
else
  tool_prefix=
fi
cc=${CC:-${tool_prefix}gcc}
strip=${STRIP:-${tool_prefix}strip}
readelf=${READELF:-${tool_prefix}readelf}
# What every AL2023 system (and so every Lambda) has: the layer must not carry these.
base_glibc=' libc.so.6 libm.so.6 libpthread.so.0 libdl.so.2 librt.so.1 ld-linux-aarch64.so.1 ld-linux-x86-64.so.2 '

echo "$sha256  $tarball" | sha256sum --check --quiet - || {
  echo "build.sh: $tarball does not match the pinned sha256 $sha256" >&2
  exit 1
}

src=$work/src-$major
stage=$work/stage-$major
rm -rf "$src" "$stage"
mkdir -p "$src" "$stage"
tar -xf "$tarball" -C "$src" --strip-components=1

cppflags=
ldflags=
if [ -n "${DEPS_ROOT:-}" ]; then
  triple=${HOST:-$(gcc -dumpmachine)}
  cppflags="-I$DEPS_ROOT/usr/include -I$DEPS_ROOT/usr/include/$triple"
  ldflags="-L$DEPS_ROOT/usr/lib/$triple -Wl,-rpath-link,$DEPS_ROOT/usr/lib/$triple"
fi

cd "$src"
# Only what pg_dump needs: no readline, ICU, GSSAPI, LDAP or NLS, so nothing else to ship.
# lz4 and zstd flags are given outright (non-empty, or configure asks pkg-config, which a cross
# build lacks for the target).
./configure --quiet --prefix="$prefix" ${HOST:+--host="$HOST"} \
  --without-readline --without-icu --without-gssapi --without-ldap --disable-nls --disable-rpath \
  --with-openssl --with-zlib --with-lz4 --with-zstd \
  CC="$cc" CFLAGS='-O2' CPPFLAGS="$cppflags" LDFLAGS="$ldflags" \
  LZ4_CFLAGS=' ' LZ4_LIBS=-llz4 ZSTD_CFLAGS=' ' ZSTD_LIBS=-lzstd

# The tools' stdout gets a 256 KiB stdio buffer instead of 4 KiB (stdout-buffer.c, beside this script):
# compiled by PostgreSQL's own rule (configure's compiler and flags), linked in by its name in that folder.
cp "$recipe/stdout-buffer.c" src/bin/pg_dump/
# DT_RPATH (not RUNPATH) $ORIGIN/../lib: it also serves libpq's own dependencies, so the binaries
# find their libraries from wherever the layer is unpacked, even without LD_LIBRARY_PATH.
link="LDFLAGS_EX=-Wl,--disable-new-dtags,-rpath,\\\$\$ORIGIN/../lib stdout-buffer.o"
make --silent -j"$jobs" -C src/backend generated-headers
# One folder at a time: pg_dump's own submakes of these run side by side under -j and race on
# the same archives (libpgcommon_shlib.a). The frontend archives only: no server (_srv) ones.
make --silent -j"$jobs" -C src/port libpgport.a libpgport_shlib.a
make --silent -j"$jobs" -C src/common libpgcommon.a libpgcommon_shlib.a
make --silent -j"$jobs" -C src/interfaces/libpq
make --silent -j"$jobs" -C src/fe_utils
make --silent -C src/bin/pg_dump stdout-buffer.o
make --silent -j"$jobs" -C src/bin/pg_dump "$link" pg_dump pg_restore pg_dumpall
make --silent -C src/interfaces/libpq install DESTDIR="$stage"
make --silent -C src/bin/pg_dump "$link" install DESTDIR="$stage"

dest=$out/$major
rm -rf "$dest"
mkdir -p "$dest/bin" "$dest/lib"
# pg_dumpall runs the pg_dump beside it, so the three stay together in one bin folder.
for tool in pg_dump pg_restore pg_dumpall; do
  cp "$stage$prefix/bin/$tool" "$dest/bin/$tool"
done

# Copies one library by its soname, as a file (a zip may not keep symbolic links).
copy_library() {
  local name=$1 dir
  if [ -e "$stage$prefix/lib/$name" ]; then
    cp -L "$stage$prefix/lib/$name" "$dest/lib/$name"
    return
  fi
  IFS=: read -r -a dirs <<<"${LIB_PATH:-}"
  for dir in "${dirs[@]}"; do
    if [ -e "$dir/$name" ]; then
      cp -L "$dir/$name" "$dest/lib/$name"
      return
    fi
  done
  echo "build.sh: $name is needed but found neither in the build nor in LIB_PATH=${LIB_PATH:-}" >&2
  exit 1
}

# Follows DT_NEEDED from the binaries through every copied library until nothing new is needed.
while :; do
  added=0
  for elf in "$dest"/bin/* "$dest"/lib/*; do
    [ -e "$elf" ] || continue
    for name in $("$readelf" -d "$elf" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
      case $base_glibc in *" $name "*) continue ;; esac
      [ -e "$dest/lib/$name" ] && continue
      copy_library "$name"
      added=1
    done
  done
  [ $added = 0 ] && break
done

chmod 0755 "$dest"/bin/* "$dest"/lib/*
"$strip" --strip-unneeded "$dest"/bin/* "$dest"/lib/*
echo "build.sh: PostgreSQL $major → $dest: $(cd "$dest" && echo bin/* lib/*)"
