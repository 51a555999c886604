/*
 * HOST BUILD ONLY: per-channel FULLY_CONNECTED for XMOS's TFLM fork.
 *
 * Measured (tests/test_tflm_project.py, docs/tflm.md): the fork's int8 FULLY_CONNECTED applies the
 * first output channel's weight scale to every output channel, so a model with per-channel weights
 * (what onnx2tf and the TFLite converter write) comes out wrong by many LSB. nlpool adds this file to
 * the host build only when the model has such an op: it defines the registration with nlpool's own
 * kernel (firmware/kernels/fully_connected.c, TFLite reference semantics), and because the
 * executable's definition takes precedence over the shared library's, the resolver picks it up.
 * On Cortex-M, upstream TFLM's FULLY_CONNECTED is used and this file is not compiled.
 */
#include <cstdint>

#include "nlpool_tflm.h"
#include "tensorflow/lite/c/builtin_op_data.h"
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/kernels/internal/quantization_util.h"
#include "tensorflow/lite/kernels/kernel_util.h"
#include "tensorflow/lite/micro/kernels/kernel_util.h"
#include "tensorflow/lite/micro/micro_log.h"

extern "C" {
#include "nlpool_kernels.h"
}

namespace {

struct OpData {
  nl_fully_connected_params_t params;  // filter and bias pointers are set in Eval
  bool has_bias;
};

void* Init(TfLiteContext* context, const char*, size_t) {
  return context->AllocatePersistentBuffer(context, sizeof(OpData));
}

TfLiteStatus Prepare(TfLiteContext* context, TfLiteNode* node) {
  auto* data = static_cast<OpData*>(node->user_data);
  nl_fully_connected_params_t& p = data->params;
  const auto* options = static_cast<const TfLiteFullyConnectedParams*>(node->builtin_data);
  nltflm::MicroContext* mc = nltflm::GetMicroContext(context);
  TfLiteTensor* in = mc->AllocateTempInputTensor(node, 0);
  TfLiteTensor* filter = mc->AllocateTempInputTensor(node, 1);
  TfLiteTensor* out = mc->AllocateTempOutputTensor(node, 0);
  TfLiteStatus status = kTfLiteError;
  const auto* fq = static_cast<const TfLiteAffineQuantization*>(filter->quantization.params);
  const auto* iq = static_cast<const TfLiteAffineQuantization*>(in->quantization.params);
  const auto* oq = static_cast<const TfLiteAffineQuantization*>(out->quantization.params);
  if (in->type == kTfLiteInt8 && filter->type == kTfLiteInt8 && out->type == kTfLiteInt8 &&
      fq != nullptr && iq != nullptr && oq != nullptr && filter->dims->size == 2) {
    p.out_depth = filter->dims->data[0];
    p.accum_depth = filter->dims->data[1];
    int64_t elements = 1;
    for (int i = 0; i < in->dims->size; ++i) elements *= in->dims->data[i];
    p.batches = static_cast<int32_t>(elements / p.accum_depth);
    p.per_channel = fq->scale->size > 1 ? 1 : 0;
    const int channels = p.per_channel ? p.out_depth : 1;
    auto* mult = static_cast<int32_t*>(context->AllocatePersistentBuffer(context, 4 * channels));
    auto* shift = static_cast<int32_t*>(context->AllocatePersistentBuffer(context, 4 * channels));
    for (int c = 0; mult != nullptr && shift != nullptr && c < channels; ++c) {
      const double real = static_cast<double>(iq->scale->data[0]) *
                          static_cast<double>(fq->scale->data[c]) /
                          static_cast<double>(oq->scale->data[0]);
      int s = 0;
      nltflm::QuantizeMultiplier(real, &mult[c], &s);
      shift[c] = s;
    }
    p.out_mult = mult;
    p.out_shift = shift;
    p.input_offset = -iq->zero_point->data[0];
    p.filter_offset = -fq->zero_point->data[0];
    p.output_offset = oq->zero_point->data[0];
    int act_min = 0, act_max = 0;
    status = nltflm::CalculateActivationRangeQuantized(context, options->activation, out, &act_min,
                                                       &act_max);
    if (mult == nullptr || shift == nullptr) {
      MicroPrintf("FULLY_CONNECTED (nlpool host shim): arena too small for the requantisation arrays");
      status = kTfLiteError;
    }
    p.act_min = act_min;
    p.act_max = act_max;
    data->has_bias = node->inputs->size > 2 && node->inputs->data[2] >= 0;
  } else {
    MicroPrintf("FULLY_CONNECTED (nlpool host shim): only int8 with 2-D weights");
  }
  mc->DeallocateTempTfLiteTensor(in);
  mc->DeallocateTempTfLiteTensor(filter);
  mc->DeallocateTempTfLiteTensor(out);
  return status;
}

TfLiteStatus Eval(TfLiteContext* context, TfLiteNode* node) {
  const auto* data = static_cast<const OpData*>(node->user_data);
  nl_fully_connected_params_t p = data->params;
  p.filter = nltflm::micro::GetTensorData<int8_t>(nltflm::micro::GetEvalInput(context, node, 1));
  p.bias = data->has_bias
               ? nltflm::micro::GetTensorData<int32_t>(nltflm::micro::GetEvalInput(context, node, 2))
               : nullptr;
  nl_fully_connected(&p, nltflm::micro::GetTensorData<int8_t>(nltflm::micro::GetEvalInput(context, node, 0)),
                     nltflm::micro::GetTensorData<int8_t>(nltflm::micro::GetEvalOutput(context, node, 0)));
  return kTfLiteOk;
}

}  // namespace

namespace NLPOOL_TFLM_NAMESPACE {

TFLMRegistration Register_FULLY_CONNECTED() { return micro::RegisterOp(Init, Prepare, Eval); }

}  // namespace NLPOOL_TFLM_NAMESPACE
