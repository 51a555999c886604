/*
 * NLPOOL_WEIGHTED_POOL as a TFLM custom op (contract: docs/custom_op.md in the nlpool repository).
 * Register it with `resolver.AddCustom(nlpool::kWeightedPoolOpName, &registration)` where
 * `registration = nlpool::Register_NLPOOL_WEIGHTED_POOL()`.
 */
#ifndef NLPOOL_WEIGHTED_POOL_OP_H_
#define NLPOOL_WEIGHTED_POOL_OP_H_

#include "nlpool_tflm.h"
#include "tensorflow/lite/micro/micro_common.h"

namespace nlpool {

constexpr const char* kWeightedPoolOpName = "NLPOOL_WEIGHTED_POOL";

TFLMRegistration Register_NLPOOL_WEIGHTED_POOL();

}  // namespace nlpool

#endif  // NLPOOL_WEIGHTED_POOL_OP_H_
