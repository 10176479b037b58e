#!/usr/bin/env bash
# Makes sure a Vulkan driver is present, installing lavapipe (Mesa's CPU Vulkan driver) when none is.
# Used by every entry script: CI and a newcomer's machine start from nothing.
set -euo pipefail

have_icd() {
  # A Vulkan ICD manifest plus the loader library is what wgpu's Vulkan backend needs.
  local d
  for d in /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d ${VK_DRIVER_FILES:+$(dirname "${VK_DRIVER_FILES%%:*}")}; do
    if compgen -G "$d/*.json" >/dev/null 2>&1; then
      # Not `grep -q`: it exits at the first match, ldconfig then dies of SIGPIPE and, under
      # pipefail, the pipeline fails although the loader is there.
      ldconfig -p 2>/dev/null | grep 'libvulkan\.so\.1' >/dev/null && return 0
    fi
  done
  return 1
}

if have_icd; then
  exit 0
fi

echo "ensure-vulkan: no Vulkan driver found; installing lavapipe (mesa-vulkan-drivers, libvulkan1)" >&2
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers libvulkan1 >&2
elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers libvulkan1 >&2
else
  cat >&2 <<'MSG'
ensure-vulkan: no Vulkan driver was found and this script cannot install one (it needs root and apt-get).
Install a Vulkan driver yourself, then run the command again:
  Debian/Ubuntu without a GPU:  sudo apt-get install mesa-vulkan-drivers libvulkan1
  With a GPU: your vendor's driver with Vulkan support (NVIDIA, AMD/Intel via Mesa).
MSG
  exit 1
fi

if ! have_icd; then
  echo "ensure-vulkan: installation finished but no Vulkan ICD is visible" >&2
  exit 1
fi
echo "ensure-vulkan: lavapipe installed" >&2
