/*
 * Which TFLM this project compiles against.
 *
 * Upstream TFLM declares everything in namespace `tflite`. XMOS's fork (the `xmos-ai-tools` wheel,
 * which nlpool uses to run this project on the host) renamed it to `tflite_micro`. The sources here
 * only name TFLM through the alias `nltflm`, so the same files build against either:
 * the default is upstream; the host check passes -DNLPOOL_TFLM_NAMESPACE=tflite_micro.
 */
#ifndef NLPOOL_TFLM_H_
#define NLPOOL_TFLM_H_

#ifndef NLPOOL_TFLM_NAMESPACE
#define NLPOOL_TFLM_NAMESPACE tflite
#endif

namespace NLPOOL_TFLM_NAMESPACE {}
namespace nltflm = NLPOOL_TFLM_NAMESPACE;

#endif  // NLPOOL_TFLM_H_
