/*
 * TFLM kernel of NLPOOL_WEIGHTED_POOL.
 *
 * Init parses the FlexBuffer options once into persistent memory; Prepare checks that the model's
 * tensors agree with those options (types, shapes, zero points, output multiplier, exp table) and
 * refuses to run with a message naming the mismatch, because a silently wrong table or zero point
 * would only show up as degraded accuracy; Eval calls nlpool_weighted_pool(), the one C function
 * that the nlpool AOT runtime calls too, so both runtimes compute the same integers.
 */
#include "nlpool_weighted_pool_op.h"

#include <cmath>
#include <cstdint>

#include "flatbuffers/flexbuffers.h"
#include "nlpool_tflm_options.h"
#include "nlpool_weighted_pool.h"
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/kernels/kernel_util.h"
#include "tensorflow/lite/micro/micro_context.h"
#include "tensorflow/lite/micro/micro_log.h"

namespace nlpool {
namespace {

constexpr int kTableSize = 256;
constexpr int kTableShift = 14;
constexpr int32_t kTableMin = 16384;  // round(exp(sigmoid(-inf)) * 2^14) = 2^14
constexpr int32_t kTableMax = 44536;  // round(e * 2^14)
constexpr int kMaxWindow = 64;        // keeps sum(w * (x - zx)) inside int32 (docs/custom_op.md)

struct OpData {
  nlpool_weighted_pool_params_t params;
  int32_t r_zero_point;
  int32_t table[kTableSize];
  const char* options_error;  // set by Init, reported by Prepare (Init cannot fail with a message)
};

// The table may be written as an untyped or a typed FlexBuffer vector; both are accepted.
template <typename VectorT>
bool ReadTable(const VectorT& vec, int32_t* table) {
  if (vec.size() != kTableSize) {
    return false;
  }
  for (int i = 0; i < kTableSize; ++i) {
    table[i] = static_cast<int32_t>(vec[i].AsInt64());
  }
  return true;
}

// The options' error (without the op name, which Prepare prefixes), or nullptr.
const char* ParseOptions(const char* buffer, size_t length, OpData* data) {
  flexbuffers::Map map = flexbuffers::Map::EmptyMap();
  const char* error = OptionsMap(buffer, length, &map);
  if (error != nullptr) {
    return error;
  }
  nlpool_weighted_pool_params_t& p = data->params;
  int32_t table_shift = 0;
  if (!ReadInt(map, "filter_h", &p.filter_h) || !ReadInt(map, "filter_w", &p.filter_w) ||
      !ReadInt(map, "stride_h", &p.stride_h) || !ReadInt(map, "stride_w", &p.stride_w) ||
      !ReadInt(map, "x_zero_point", &p.x_zero_point) ||
      !ReadInt(map, "r_zero_point", &data->r_zero_point) ||
      !ReadInt(map, "out_zero_point", &p.out_zero_point) ||
      !ReadInt(map, "out_multiplier", &p.out_multiplier) ||
      !ReadInt(map, "out_shift", &p.out_shift) || !ReadInt(map, "table_shift", &table_shift)) {
    return "an option is missing, not an integer or outside int32 (filter_h, filter_w, "
           "stride_h, stride_w, x_zero_point, r_zero_point, out_zero_point, out_multiplier, "
           "out_shift, table_shift)";
  }
  if (table_shift != kTableShift) {
    return "option table_shift must be 14";
  }
  const flexbuffers::Reference table = map["table"];
  const bool read = table.IsTypedVector() ? ReadTable(table.AsTypedVector(), data->table)
                    : table.IsVector()    ? ReadTable(table.AsVector(), data->table)
                                          : false;
  if (!read) {
    return "option table must be a vector of 256 integers";
  }
  p.table = data->table;
  return nullptr;
}

void* Init(TfLiteContext* context, const char* buffer, size_t length) {
  OpData* data = NewOpData<OpData>(context);
  if (data != nullptr) {
    data->options_error = ParseOptions(buffer, length, data);
  }
  return data;
}

// Checks the tensors against the options; on success fills the shape fields of the params.
TfLiteStatus Validate(const TfLiteTensor* x, const TfLiteTensor* r, const TfLiteTensor* y,
                      OpData* data) {
  nlpool_weighted_pool_params_t& p = data->params;
  if (x->type != kTfLiteInt8 || r->type != kTfLiteInt8 || y->type != kTfLiteInt8) {
    MicroPrintf("NLPOOL_WEIGHTED_POOL: x, r and y must be int8 (got types %d, %d, %d)",
                static_cast<int>(x->type), static_cast<int>(r->type), static_cast<int>(y->type));
    return kTfLiteError;
  }
  if (x->dims->size != 4 || r->dims->size != 4 || y->dims->size != 4) {
    MicroPrintf("NLPOOL_WEIGHTED_POOL: x, r and y must be 4-D NHWC");
    return kTfLiteError;
  }
  for (int i = 0; i < 4; ++i) {
    if (x->dims->data[i] != r->dims->data[i]) {
      MicroPrintf("NLPOOL_WEIGHTED_POOL: r must have the shape of x (dimension %d: %d vs %d)", i,
                  x->dims->data[i], r->dims->data[i]);
      return kTfLiteError;
    }
  }
  if (p.filter_h < 1 || p.filter_w < 1 || p.stride_h < 1 || p.stride_w < 1 ||
      p.filter_h * p.filter_w > kMaxWindow) {
    MicroPrintf("NLPOOL_WEIGHTED_POOL: window %dx%d stride %dx%d is invalid (window at most %d)",
                static_cast<int>(p.filter_h), static_cast<int>(p.filter_w),
                static_cast<int>(p.stride_h), static_cast<int>(p.stride_w), kMaxWindow);
    return kTfLiteError;
  }
  p.batches = x->dims->data[0];
  p.in_h = x->dims->data[1];
  p.in_w = x->dims->data[2];
  p.channels = x->dims->data[3];
  if (p.in_h < p.filter_h || p.in_w < p.filter_w) {
    MicroPrintf("NLPOOL_WEIGHTED_POOL: input %dx%d is smaller than the window",
                static_cast<int>(p.in_h), static_cast<int>(p.in_w));
    return kTfLiteError;
  }
  p.out_h = (p.in_h - p.filter_h) / p.stride_h + 1;  // VALID: trailing rows are dropped
  p.out_w = (p.in_w - p.filter_w) / p.stride_w + 1;
  const int32_t expected[4] = {p.batches, p.out_h, p.out_w, p.channels};
  for (int i = 0; i < 4; ++i) {
    if (y->dims->data[i] != expected[i]) {
      MicroPrintf("NLPOOL_WEIGHTED_POOL: output dimension %d is %d but the options give %d", i,
                  y->dims->data[i], static_cast<int>(expected[i]));
      return kTfLiteError;
    }
  }
  float sx, sr, sy;
  int32_t zx, zr, zy;
  if (!PerTensorQuant(x, &sx, &zx) || !PerTensorQuant(r, &sr, &zr) ||
      !PerTensorQuant(y, &sy, &zy)) {
    MicroPrintf("NLPOOL_WEIGHTED_POOL: x, r and y must be quantised per tensor");
    return kTfLiteError;
  }
  if (zx != p.x_zero_point || zr != data->r_zero_point || zy != p.out_zero_point) {
    MicroPrintf("NLPOOL_WEIGHTED_POOL: zero points disagree with the options: tensors x=%d r=%d "
                "y=%d, options x_zero_point=%d r_zero_point=%d out_zero_point=%d",
                static_cast<int>(zx), static_cast<int>(zr), static_cast<int>(zy),
                static_cast<int>(p.x_zero_point), static_cast<int>(data->r_zero_point),
                static_cast<int>(p.out_zero_point));
    return kTfLiteError;
  }
  // out_multiplier * 2^(out_shift - 31) must be sx / sy; float32 scales allow ~1e-7 relative.
  const double real = static_cast<double>(sx) / static_cast<double>(sy);
  const double coded = std::ldexp(static_cast<double>(p.out_multiplier), p.out_shift - 31);
  if (!(std::fabs(coded - real) <= 1e-5 * real)) {
    MicroPrintf("NLPOOL_WEIGHTED_POOL: out_multiplier/out_shift (%d, %d) do not encode the "
                "tensors' scale ratio sx/sy",
                static_cast<int>(p.out_multiplier), static_cast<int>(p.out_shift));
    return kTfLiteError;
  }
  // table[q + 128] = round(exp(sigmoid(sr * (q - zr))) * 2^14); allow 1 for float rounding.
  for (int i = 0; i < kTableSize; ++i) {
    const double v = static_cast<double>(sr) * static_cast<double>(i - 128 - zr);
    const double want = std::exp(1.0 / (1.0 + std::exp(-v))) * (1 << kTableShift);
    const int32_t got = data->table[i];
    if (got < kTableMin || got > kTableMax || std::fabs(static_cast<double>(got) - want) > 1.0) {
      MicroPrintf("NLPOOL_WEIGHTED_POOL: table[%d] = %d disagrees with the scale and zero point "
                  "of r (expected %d)",
                  i, static_cast<int>(got), static_cast<int>(std::lround(want)));
      return kTfLiteError;
    }
  }
  return kTfLiteOk;
}

TfLiteStatus Prepare(TfLiteContext* context, TfLiteNode* node) {
  OpData* data = static_cast<OpData*>(node->user_data);
  if (data == nullptr) {
    MicroPrintf("NLPOOL_WEIGHTED_POOL: no arena space for the op data");
    return kTfLiteError;
  }
  if (data->options_error != nullptr) {
    MicroPrintf("NLPOOL_WEIGHTED_POOL: %s", data->options_error);
    return kTfLiteError;
  }
  if (node->inputs->size != 2 || node->outputs->size != 1) {
    MicroPrintf("NLPOOL_WEIGHTED_POOL: expects 2 inputs (x, r) and 1 output, got %d and %d",
                node->inputs->size, node->outputs->size);
    return kTfLiteError;
  }
  nltflm::MicroContext* micro_context = nltflm::GetMicroContext(context);
  TfLiteTensor* x = micro_context->AllocateTempInputTensor(node, 0);
  TfLiteTensor* r = micro_context->AllocateTempInputTensor(node, 1);
  TfLiteTensor* y = micro_context->AllocateTempOutputTensor(node, 0);
  TfLiteStatus status = kTfLiteError;
  if (x != nullptr && r != nullptr && y != nullptr) {
    status = Validate(x, r, y, data);
  }
  if (x != nullptr) micro_context->DeallocateTempTfLiteTensor(x);
  if (r != nullptr) micro_context->DeallocateTempTfLiteTensor(r);
  if (y != nullptr) micro_context->DeallocateTempTfLiteTensor(y);
  return status;
}

TfLiteStatus Eval(TfLiteContext* context, TfLiteNode* node) {
  const OpData* data = static_cast<const OpData*>(node->user_data);
  const TfLiteEvalTensor* x = nltflm::micro::GetEvalInput(context, node, 0);
  const TfLiteEvalTensor* r = nltflm::micro::GetEvalInput(context, node, 1);
  TfLiteEvalTensor* y = nltflm::micro::GetEvalOutput(context, node, 0);
  nlpool_weighted_pool(&data->params, nltflm::micro::GetTensorData<int8_t>(x),
                       nltflm::micro::GetTensorData<int8_t>(r),
                       nltflm::micro::GetTensorData<int8_t>(y));
  return kTfLiteOk;
}

}  // namespace

TFLMRegistration Register_NLPOOL_WEIGHTED_POOL() {
  return nltflm::micro::RegisterOp(Init, Prepare, Eval);
}

}  // namespace nlpool
