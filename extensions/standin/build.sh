#!/bin/sh
# Rebuilds the sandbox stand-in binaries (NOT Relay) from standin.c and prints their sha256,
# which extensions/standin.yml pins. Needs gcc and gcc-aarch64-linux-gnu (Debian/Ubuntu:
# `apt-get install gcc gcc-aarch64-linux-gnu`). Static, so they run on every Lambda runtime;
# stripped and without a build id, so a rebuild with the same compilers gives the same bytes.
set -eu
cd "$(dirname "$0")"

CFLAGS="-Os -static -s -Wall -Wextra -Werror -ffile-prefix-map=$PWD=. -Wl,--build-id=none"

# shellcheck disable=SC2086  # CFLAGS is a list of words
${CC_X86_64:-gcc} $CFLAGS -o sentry-standin-x86_64 standin.c
# shellcheck disable=SC2086
${CC_AARCH64:-aarch64-linux-gnu-gcc} $CFLAGS -o sentry-standin-aarch64 standin.c

sha256sum sentry-standin-x86_64 sentry-standin-aarch64
echo "update the sha256 pins in ../standin.yml if they changed"
