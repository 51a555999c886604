/*
 * What nlpool's TFLM custom-op kernels share: their Init's persistent op data, reading the
 * FlexBuffer custom options (the root map, one integer option) and a tensor's per-tensor
 * quantisation.
 *
 * Every custom op of the project parses its options and checks its tensors the same way; one copy
 * here keeps the kernels (nlpool_*_op.cc) from drifting apart on what they accept. Errors are
 * returned without an op name: each kernel prefixes its own when it prints them.
 */
#ifndef NLPOOL_TFLM_OPTIONS_H_
#define NLPOOL_TFLM_OPTIONS_H_

#include <cstddef>
#include <cstdint>

#include "flatbuffers/flexbuffers.h"
#include "tensorflow/lite/c/common.h"

namespace nlpool {

// The op's fixed persistent data, value-initialised (all zero), or nullptr when the arena is full.
template <typename OpDataT>
OpDataT* NewOpData(TfLiteContext* context) {
  void* raw = context->AllocatePersistentBuffer(context, sizeof(OpDataT));
  if (raw == nullptr) {
    return nullptr;
  }
  OpDataT* data = static_cast<OpDataT*>(raw);
  *data = OpDataT();
  return data;
}

// Points *map at the root map of an op's custom options; on failure returns the error and leaves
// *map empty.
inline const char* OptionsMap(const char* buffer, size_t length, flexbuffers::Map* map) {
  *map = flexbuffers::Map::EmptyMap();
  if (buffer == nullptr || length == 0) {
    return "the op has no custom options (expected a FlexBuffer map)";
  }
  const flexbuffers::Reference root =
      flexbuffers::GetRoot(reinterpret_cast<const uint8_t*>(buffer), length);
  if (!root.IsMap()) {
    return "custom options are not a FlexBuffer map";
  }
  *map = root.AsMap();
  return nullptr;
}

// An integer (signed or unsigned; unsigned beyond int64 saturates), or false.
inline bool IntValue(const flexbuffers::Reference& ref, int64_t* value) {
  if (ref.IsUInt()) {
    const uint64_t v = ref.AsUInt64();
    *value = v > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(v);
    return true;
  }
  if (ref.IsInt()) {
    *value = ref.AsInt64();
    return true;
  }
  return false;
}

// Reads one integer option; false when it is missing, not an integer or outside int32.
inline bool ReadInt(const flexbuffers::Map& map, const char* key, int32_t* value) {
  int64_t v = 0;
  if (!IntValue(map[key], &v) || v < INT32_MIN || v > INT32_MAX) {
    return false;
  }
  *value = static_cast<int32_t>(v);
  return true;
}

// Per-tensor affine quantisation: (scale, zero point), or false.
inline bool PerTensorQuant(const TfLiteTensor* t, float* scale, int32_t* zero_point) {
  if (t->quantization.type != kTfLiteAffineQuantization || t->quantization.params == nullptr) {
    return false;
  }
  const auto* q = static_cast<const TfLiteAffineQuantization*>(t->quantization.params);
  if (q->scale == nullptr || q->scale->size != 1 || q->zero_point == nullptr ||
      q->zero_point->size != 1) {
    return false;
  }
  *scale = q->scale->data[0];
  *zero_point = q->zero_point->data[0];
  return true;
}

}  // namespace nlpool

#endif  // NLPOOL_TFLM_OPTIONS_H_
