#!/usr/bin/env bash
# Sets up the Dawn replay suite (docs/CONFORMANCE.md, "Dawn") and prints the environment it needs:
# - Node.js (apt-get's nodejs and npm where `node` is missing);
# - the npm package `webgpu` (Dawn's Node bindings) in tests/dawn, from the registry at the version
#   package-lock.json pins (`npm ci`);
# - EGL for Dawn's OpenGL ES backend (libegl1, Mesa's EGL and GLES drivers);
# - the Vulkan shim (scripts/dawn-vulkan-shim.c, built here with gcc and the Vulkan headers) that
#   lets Dawn's Vulkan backend accept lavapipe: target/dawn-shim/libvulkan.so.1.
# Usage: `source <(bash scripts/dawn.sh)` exports WGPU_ATTENTION_DAWN_SHIM and EGL_PLATFORM.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

apt_install() {
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
  else
    echo "dawn.sh: missing $*; install them (needs root and apt-get), then run again" >&2
    exit 1
  fi
}

missing=()
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v gcc >/dev/null || missing+=(gcc libc6-dev)
[ -f /usr/include/vulkan/vulkan.h ] || missing+=(libvulkan-dev)
# EGL and GLES from Mesa (the llvmpipe GL driver): Dawn's OpenGL ES backend.
ldconfig -p 2>/dev/null | grep 'libEGL\.so\.1' >/dev/null || missing+=(libegl1)
ldconfig -p 2>/dev/null | grep 'libGLESv2\.so\.2' >/dev/null || missing+=(libgles2)
ls /usr/lib/*/libEGL_mesa.so.0 >/dev/null 2>&1 || missing+=(libegl-mesa0)
ls /usr/lib/*/dri/swrast_dri.so >/dev/null 2>&1 || missing+=(libgl1-mesa-dri)
if [ ${#missing[@]} -gt 0 ]; then
  echo "dawn.sh: installing ${missing[*]}" >&2
  apt_install "${missing[@]}"
fi

# The npm package at the locked version (registry access; the lockfile pins it and its hash).
if [ ! -f tests/dawn/node_modules/webgpu/package.json ] ||
  ! grep -q "\"version\": \"$(node -p "require('./tests/dawn/package-lock.json').packages['node_modules/webgpu'].version")\"" \
    tests/dawn/node_modules/webgpu/package.json; then
  (cd tests/dawn && npm ci --no-audit --no-fund --loglevel=error >&2)
fi

# The Vulkan shim, against the loader this machine has.
real="$(ldconfig -p | grep 'libvulkan\.so\.1 ' | head -1 | awk '{print $NF}')"
if [ -z "$real" ]; then
  echo "dawn.sh: no libvulkan.so.1 (scripts/ensure-vulkan.sh installs it)" >&2
  exit 1
fi
mkdir -p target/dawn-shim
if [ ! -f target/dawn-shim/libvulkan.so.1 ] ||
  [ scripts/dawn-vulkan-shim.c -nt target/dawn-shim/libvulkan.so.1 ]; then
  gcc -O2 -Wall -Werror -shared -fPIC -DREAL_VULKAN="\"$real\"" \
    -o target/dawn-shim/libvulkan.so.1 scripts/dawn-vulkan-shim.c -ldl >&2
fi
echo "export WGPU_ATTENTION_DAWN_SHIM=$PWD/target/dawn-shim"
echo "export EGL_PLATFORM=surfaceless"
