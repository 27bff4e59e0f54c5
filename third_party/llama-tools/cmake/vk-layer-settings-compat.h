// Force-included into llama.cpp's C++ build (by tokbench-llama.cmake) only where the
// system's Vulkan headers predate VK_EXT_layer_settings (Vulkan-Headers 1.3.261; Debian 12
// ships 1.3.239). ggml-vulkan.cpp builds its instance with three of that extension's C++
// types unconditionally; this declares them, laid out as the C structures the extension
// defines, so the pNext chain the instance gets is what newer headers would build (the
// loader and drivers skip a structure they do not know). Only <vulkan/vulkan_core.h> is
// included: including vulkan.hpp here would set up its dispatcher before llama.cpp chose
// its own configuration (a link error, then a crash at start).
#pragma once
#if defined(__cplusplus) && __has_include(<vulkan/vulkan_core.h>)
#include <vulkan/vulkan_core.h>
#if !defined(VK_EXT_layer_settings)
#include <cstdint>
#include <vector>

namespace vk {

// VkLayerSettingTypeEXT
enum class LayerSettingTypeEXT : int32_t {
    eBool32 = 0,
    eInt32 = 1,
    eInt64 = 2,
    eUint32 = 3,
    eUint64 = 4,
    eFloat32 = 5,
    eFloat64 = 6,
    eString = 7,
};

// VkLayerSettingEXT
struct LayerSettingEXT {
    const char *pLayerName;
    const char *pSettingName;
    LayerSettingTypeEXT type;
    uint32_t valueCount;
    const void *pValues;
};

// VkLayerSettingsCreateInfoEXT (VK_STRUCTURE_TYPE_LAYER_SETTINGS_CREATE_INFO_EXT)
struct LayerSettingsCreateInfoEXT {
    VkStructureType sType = static_cast<VkStructureType>(1000496000);
    const void *pNext = nullptr;
    uint32_t settingCount = 0;
    const LayerSettingEXT *pSettings = nullptr;

    explicit LayerSettingsCreateInfoEXT(const std::vector<LayerSettingEXT> &settings)
        : settingCount(static_cast<uint32_t>(settings.size())), pSettings(settings.data()) {}
};

} // namespace vk

#endif // !VK_EXT_layer_settings
#endif // __cplusplus && vulkan_core.h
