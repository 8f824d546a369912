#!/usr/bin/env bash
# Installs the built library into a temporary prefix and builds two small
# consumers against it: one with CMake's find_package(flashrt), one with
# pkg-config. Usage: install_consumer.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
tmp=$(mktemp -d /tmp/frt-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null

test -f "$tmp/prefix/include/flashrt/core.h"
test -f "$tmp/prefix/lib/libflashrt.a" || test -f "$tmp/prefix/lib/x86_64-linux-gnu/libflashrt.a"

mkdir -p "$tmp/consumer"
cat > "$tmp/consumer/main.c" <<'C'
#include <flashrt/core.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
    const char *v = frt_version();
    printf("flashrt %s, %d threads, %s\n", v, frt_num_threads(), frt_cpu_features());
    return strlen(v) > 0 && frt_status_name(FRT_OK)[0] == 'F' ? 0 : 1;
}
C
cat > "$tmp/consumer/CMakeLists.txt" <<'C'
cmake_minimum_required(VERSION 3.22)
project(consumer C)
find_package(flashrt REQUIRED)
add_executable(consumer main.c)
target_link_libraries(consumer PRIVATE flashrt::flashrt)
C
cmake -S "$tmp/consumer" -B "$tmp/consumer/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/consumer/build" >/dev/null
libdir=$(dirname "$(find "$tmp/prefix" -name 'libflashrt.so*' | head -n 1)")
LD_LIBRARY_PATH="$libdir" "$tmp/consumer/build/consumer"

pcdir=$(dirname "$(find "$tmp/prefix" -name flashrt.pc | head -n 1)")
export PKG_CONFIG_PATH="$pcdir"
cc "$tmp/consumer/main.c" -o "$tmp/consumer/pc-shared" $(pkg-config --cflags --libs flashrt)
LD_LIBRARY_PATH="$libdir" "$tmp/consumer/pc-shared"
# Static: through the exported CMake target (its dependencies link as the
# system's shared libraries; Debian ships no static FFmpeg dependency chain,
# so `pkg-config --static` cannot work for any FFmpeg consumer here).
cat > "$tmp/consumer/CMakeLists.txt" <<'C'
cmake_minimum_required(VERSION 3.22)
project(consumer C)
find_package(flashrt REQUIRED)
add_executable(consumer_static main.c)
target_link_libraries(consumer_static PRIVATE flashrt::flashrt_static)
C
rm -rf "$tmp/consumer/build"
cmake -S "$tmp/consumer" -B "$tmp/consumer/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/consumer/build" >/dev/null
"$tmp/consumer/build/consumer_static"
echo "install consumer: find_package (shared and static) and pkg-config build and run"
