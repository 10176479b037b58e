// A shim put in front of the Vulkan loader for Dawn's Vulkan backend on lavapipe (Mesa 22.3),
// built by scripts/dawn.sh as `libvulkan.so.1` in a folder of its own, which attn-bench puts on
// LD_LIBRARY_PATH for the Dawn harness only (WGPU_ATTENTION_DAWN_SHIM).
//
// Why: Dawn refuses a Vulkan device without shaderSampledImageArrayDynamicIndexing and
// shaderStorageImageArrayDynamicIndexing (arrays of textures indexed dynamically), which lavapipe
// 22.3 does not report. The library's kernels use storage buffers only and never index a texture
// array, so neither feature is ever exercised.
//
// What: vkGetInstanceProcAddr is the only entry Dawn takes from the loader by name; every other
// function comes through it. The shim forwards it to the real loader, except for
// - vkGetPhysicalDeviceFeatures(2)(KHR): the two features read as present;
// - vkCreateDevice: the two features are cleared again where the driver lacks them, so the
//   driver is never asked to enable a feature it does not have.
// Nothing else is changed.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vulkan/vulkan.h>

#ifndef REAL_VULKAN
#define REAL_VULKAN "/usr/lib/x86_64-linux-gnu/libvulkan.so.1"
#endif

static PFN_vkGetInstanceProcAddr real_gipa;
static PFN_vkGetPhysicalDeviceFeatures real_features;
static PFN_vkGetPhysicalDeviceFeatures2 real_features2;
static PFN_vkGetPhysicalDeviceFeatures2 real_features2_khr;
static PFN_vkCreateDevice real_create_device;

static void load_real(void) {
  if (real_gipa) return;
  const char *path = getenv("WGPU_ATTENTION_REAL_VULKAN");
  void *lib = dlopen(path ? path : REAL_VULKAN, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    fprintf(stderr, "dawn-vulkan-shim: cannot open the real loader %s: %s\n",
            path ? path : REAL_VULKAN, dlerror());
    return;
  }
  real_gipa = (PFN_vkGetInstanceProcAddr)dlsym(lib, "vkGetInstanceProcAddr");
}

static void claim(VkPhysicalDeviceFeatures *f) {
  f->shaderSampledImageArrayDynamicIndexing = VK_TRUE;
  f->shaderStorageImageArrayDynamicIndexing = VK_TRUE;
}

static VKAPI_ATTR void VKAPI_CALL shim_features(VkPhysicalDevice pd, VkPhysicalDeviceFeatures *f) {
  real_features(pd, f);
  claim(f);
}

static VKAPI_ATTR void VKAPI_CALL shim_features2(VkPhysicalDevice pd, VkPhysicalDeviceFeatures2 *f) {
  real_features2(pd, f);
  claim(&f->features);
}

static VKAPI_ATTR void VKAPI_CALL shim_features2_khr(VkPhysicalDevice pd,
                                                     VkPhysicalDeviceFeatures2 *f) {
  real_features2_khr(pd, f);
  claim(&f->features);
}

// Clears in `f` the two features unless the driver really has them.
static void unclaim(VkPhysicalDevice pd, VkPhysicalDeviceFeatures *f) {
  VkPhysicalDeviceFeatures real;
  memset(&real, 0, sizeof real);
  real_features(pd, &real);
  if (!real.shaderSampledImageArrayDynamicIndexing) f->shaderSampledImageArrayDynamicIndexing = VK_FALSE;
  if (!real.shaderStorageImageArrayDynamicIndexing) f->shaderStorageImageArrayDynamicIndexing = VK_FALSE;
}

static VKAPI_ATTR VkResult VKAPI_CALL shim_create_device(VkPhysicalDevice pd,
                                                         const VkDeviceCreateInfo *info,
                                                         const VkAllocationCallbacks *alloc,
                                                         VkDevice *device) {
  VkDeviceCreateInfo copy = *info;
  VkPhysicalDeviceFeatures enabled;
  if (info->pEnabledFeatures) {
    enabled = *info->pEnabledFeatures;
    unclaim(pd, &enabled);
    copy.pEnabledFeatures = &enabled;
  }
  // A VkPhysicalDeviceFeatures2 in the chain: changed for the call, restored after it.
  VkPhysicalDeviceFeatures2 *f2 = NULL;
  VkPhysicalDeviceFeatures saved;
  for (VkBaseOutStructure *s = (VkBaseOutStructure *)info->pNext; s; s = s->pNext) {
    if (s->sType == VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2) {
      f2 = (VkPhysicalDeviceFeatures2 *)s;
      saved = f2->features;
      unclaim(pd, &f2->features);
      break;
    }
  }
  VkResult r = real_create_device(pd, &copy, alloc, device);
  if (f2) f2->features = saved;
  return r;
}

VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL vkGetInstanceProcAddr(VkInstance instance,
                                                               const char *name) {
  load_real();
  if (!real_gipa) return NULL;
  // Fetched through itself, the entry stays the shim's.
  if (!strcmp(name, "vkGetInstanceProcAddr")) return (PFN_vkVoidFunction)vkGetInstanceProcAddr;
  PFN_vkVoidFunction f = real_gipa(instance, name);
  if (!f || !instance) return f;
  if (!strcmp(name, "vkGetPhysicalDeviceFeatures")) {
    real_features = (PFN_vkGetPhysicalDeviceFeatures)f;
    return (PFN_vkVoidFunction)shim_features;
  }
  if (!strcmp(name, "vkGetPhysicalDeviceFeatures2")) {
    real_features2 = (PFN_vkGetPhysicalDeviceFeatures2)f;
    return (PFN_vkVoidFunction)shim_features2;
  }
  if (!strcmp(name, "vkGetPhysicalDeviceFeatures2KHR")) {
    real_features2_khr = (PFN_vkGetPhysicalDeviceFeatures2)f;
    return (PFN_vkVoidFunction)shim_features2_khr;
  }
  if (!strcmp(name, "vkCreateDevice")) {
    real_create_device = (PFN_vkCreateDevice)f;
    // unclaim() needs the real vkGetPhysicalDeviceFeatures even if Dawn never asked for it.
    if (!real_features)
      real_features = (PFN_vkGetPhysicalDeviceFeatures)real_gipa(instance,
                                                                 "vkGetPhysicalDeviceFeatures");
    return (PFN_vkVoidFunction)shim_create_device;
  }
  return f;
}
