#!/bin/sh
# Configures, builds and installs tensortape into a temporary prefix, then
# builds consumer.c against the installed copy through pkg-config, once with
# the shared library and once with the static one, and runs both programs.
# Nothing is written outside the temporary directory, which is removed on
# exit. CC selects the compiler (default cc).
# Usage: install_and_link.sh SOURCE_DIR CONSUMER_C REAL
set -eu

source_dir=$1
consumer=$2
real=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
compiler=${CC:-cc}

# An explicit libdir, so that the paths below do not depend on the
# distribution's default (lib/x86_64-linux-gnu on Debian).
meson setup "$work/build" "$source_dir" --prefix="$prefix" --libdir=lib \
    -Dreal="$real" > "$work/setup.log" ||
    { cat "$work/setup.log"; exit 1; }
meson install -C "$work/build" > "$work/install.log" ||
    { cat "$work/install.log"; exit 1; }

for file in include/tensortape.h include/tensortape_config.h lib/libtensortape.so \
    lib/libtensortape.a lib/pkgconfig/tensortape.pc; do
    if [ ! -e "$prefix/$file" ]; then
        echo "missing after install: $prefix/$file"
        exit 1
    fi
done

PKG_CONFIG_PATH=$prefix/lib/pkgconfig
export PKG_CONFIG_PATH

version=$(pkg-config --modversion tensortape)
echo "pkg-config: tensortape $version"

# Shared library: the loader finds it through LD_LIBRARY_PATH.
# shellcheck disable=SC2046 # pkg-config output is a list of flags
"$compiler" -std=c11 $(pkg-config --cflags tensortape) "$consumer" \
    -o "$work/consumer_shared" $(pkg-config --libs tensortape) -lm
LD_LIBRARY_PATH=$prefix/lib "$work/consumer_shared"
echo "shared library: passed"

# Static library: the archive in place of -ltensortape, plus the libraries
# that pkg-config lists for static linking.
# shellcheck disable=SC2046
"$compiler" -std=c11 $(pkg-config --cflags tensortape) "$consumer" \
    -o "$work/consumer_static" "$prefix/lib/libtensortape.a" \
    $(pkg-config --static --libs tensortape | sed 's/-ltensortape//') -lm
if ldd "$work/consumer_static" | grep -q libtensortape; then
    echo "consumer_static loads libtensortape.so"
    exit 1
fi
"$work/consumer_static"
echo "static library: passed"
