/*
 * HOST BUILD ONLY: BATCH_MATMUL for XMOS's TFLM fork.
 *
 * The fork's xtflm_python.so declares Register_BATCH_MATMUL() in its headers but ships no kernel for
 * it, so a model with attention cannot link. This file defines that registration with nlpool's own
 * int8 kernel (firmware/kernels/batch_matmul.c, TFLite reference semantics, per-tensor quantisation),
 * so the rest of the model still runs under real TFLM code. On Cortex-M, upstream TFLM's own
 * BATCH_MATMUL kernel is used and this file is not compiled.
 */
#include <cstdint>

#include "nlpool_tflm.h"
#include "tensorflow/lite/c/builtin_op_data.h"
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/kernels/internal/quantization_util.h"
#include "tensorflow/lite/micro/kernels/kernel_util.h"
#include "tensorflow/lite/micro/micro_log.h"

extern "C" {
#include "nlpool_kernels.h"
}

namespace {

bool PerTensor(const TfLiteTensor* t, float* scale, int32_t* zero_point) {
  if (t->quantization.type != kTfLiteAffineQuantization) return false;
  const auto* q = static_cast<const TfLiteAffineQuantization*>(t->quantization.params);
  if (q == nullptr || q->scale->size != 1) return false;
  *scale = q->scale->data[0];
  *zero_point = q->zero_point->data[0];
  return true;
}

int32_t Batches(const TfLiteIntArray* dims) {
  int32_t n = 1;
  for (int i = 0; i < dims->size - 2; ++i) n *= dims->data[i];
  return n;
}

void* Init(TfLiteContext* context, const char*, size_t) {
  return context->AllocatePersistentBuffer(context, sizeof(nl_batch_matmul_params_t));
}

TfLiteStatus Prepare(TfLiteContext* context, TfLiteNode* node) {
  auto* p = static_cast<nl_batch_matmul_params_t*>(node->user_data);
  const auto* options = static_cast<const TfLiteBatchMatMulParams*>(node->builtin_data);
  nltflm::MicroContext* mc = nltflm::GetMicroContext(context);
  TfLiteTensor* lhs = mc->AllocateTempInputTensor(node, 0);
  TfLiteTensor* rhs = mc->AllocateTempInputTensor(node, 1);
  TfLiteTensor* out = mc->AllocateTempOutputTensor(node, 0);
  float sl, sr, so;
  int32_t zl, zr, zo;
  TfLiteStatus status = kTfLiteError;
  if (lhs->type == kTfLiteInt8 && rhs->type == kTfLiteInt8 && out->type == kTfLiteInt8 &&
      PerTensor(lhs, &sl, &zl) && PerTensor(rhs, &sr, &zr) && PerTensor(out, &so, &zo)) {
    const int nl = lhs->dims->size, nr = rhs->dims->size;
    const int32_t lr = lhs->dims->data[nl - 2], lc = lhs->dims->data[nl - 1];
    const int32_t rr = rhs->dims->data[nr - 2], rc = rhs->dims->data[nr - 1];
    const bool adj_x = options->adj_x, adj_y = options->adj_y;
    const int32_t lb = Batches(lhs->dims), rb = Batches(rhs->dims);
    if (lb == rb || lb == 1 || rb == 1) {
      p->batches = lb > rb ? lb : rb;
      p->rows = adj_x ? lc : lr;
      p->depth = adj_x ? lr : lc;
      p->cols = adj_y ? rr : rc;
      p->lhs_batch_stride = lb == 1 ? 0 : lr * lc;
      p->lhs_row_stride = adj_x ? 1 : lc;
      p->lhs_depth_stride = adj_x ? lc : 1;
      p->rhs_batch_stride = rb == 1 ? 0 : rr * rc;
      p->rhs_depth_stride = adj_y ? 1 : rc;
      p->rhs_col_stride = adj_y ? rc : 1;
      p->lhs_offset = -zl;
      p->rhs_offset = -zr;
      p->output_offset = zo;
      p->act_min = -128;
      p->act_max = 127;
      int shift = 0;
      const double real = static_cast<double>(sl) * static_cast<double>(sr) / static_cast<double>(so);
      nltflm::QuantizeMultiplier(real, &p->out_mult, &shift);
      p->out_shift = shift;
      status = kTfLiteOk;
    }
  }
  if (status != kTfLiteOk) {
    MicroPrintf("BATCH_MATMUL (nlpool host shim): only int8 per-tensor with equal or broadcast batches");
  }
  mc->DeallocateTempTfLiteTensor(lhs);
  mc->DeallocateTempTfLiteTensor(rhs);
  mc->DeallocateTempTfLiteTensor(out);
  return status;
}

TfLiteStatus Eval(TfLiteContext* context, TfLiteNode* node) {
  const auto* p = static_cast<const nl_batch_matmul_params_t*>(node->user_data);
  nl_batch_matmul(p, nltflm::micro::GetTensorData<int8_t>(nltflm::micro::GetEvalInput(context, node, 0)),
                  nltflm::micro::GetTensorData<int8_t>(nltflm::micro::GetEvalInput(context, node, 1)),
                  nltflm::micro::GetTensorData<int8_t>(nltflm::micro::GetEvalOutput(context, node, 0)));
  return kTfLiteOk;
}

}  // namespace

namespace NLPOOL_TFLM_NAMESPACE {

TFLMRegistration Register_BATCH_MATMUL() { return micro::RegisterOp(Init, Prepare, Eval); }

}  // namespace NLPOOL_TFLM_NAMESPACE
