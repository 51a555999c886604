/*
 * Int8 kernels of the nlpool AOT runtime: one parameter struct and one entry point per op.
 *
 * Every parameter that TFLite derives in Prepare (multipliers, shifts, padding, lookup tables,
 * index maps) is computed by the Python generator and stored as constants, so the kernels only
 * evaluate. Tensors are dense, row-major (NHWC for 4-D). Generic ops work on shapes padded to
 * NL_MAX_DIMS dimensions with element strides, so broadcasting and permutations need no scratch.
 */
#ifndef NLPOOL_KERNELS_H
#define NLPOOL_KERNELS_H

#include <stdint.h>

#define NL_MAX_DIMS 6

/* CONV_2D, per-channel quantised. Filter is OHWI, bias may be NULL, filter_sums[o] = sum of filter o. */
typedef struct {
    int32_t batches, in_h, in_w, in_c, out_h, out_w, out_c;
    int32_t filter_h, filter_w, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
    int32_t input_offset, output_offset, act_min, act_max;
    const int8_t *filter;
    const int32_t *filter_sums;
    const int32_t *bias;
    const int32_t *out_mult;
    const int32_t *out_shift;
} nl_conv2d_params_t;
void nl_conv2d(const nl_conv2d_params_t *p, const int8_t *in, int8_t *out);

/* DEPTHWISE_CONV_2D, per-channel quantised. Filter is 1HWO with O = in_c * depth_mult. */
typedef struct {
    int32_t batches, in_h, in_w, in_c, out_h, out_w, depth_mult;
    int32_t filter_h, filter_w, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
    int32_t input_offset, output_offset, act_min, act_max;
    const int8_t *filter;
    const int32_t *bias;
    const int32_t *out_mult;
    const int32_t *out_shift;
} nl_depthwise_conv2d_params_t;
void nl_depthwise_conv2d(const nl_depthwise_conv2d_params_t *p, const int8_t *in, int8_t *out);

/* FULLY_CONNECTED: out[b][o] = sum_k (in + in_off)(w + w_off); per_channel selects mult[o]. */
typedef struct {
    int32_t batches, accum_depth, out_depth, per_channel;
    int32_t input_offset, filter_offset, output_offset, act_min, act_max;
    const int8_t *filter;
    const int32_t *bias;
    const int32_t *out_mult;
    const int32_t *out_shift;
} nl_fully_connected_params_t;
void nl_fully_connected(const nl_fully_connected_params_t *p, const int8_t *in, int8_t *out);

/* Broadcasting element-wise ops: strides are 0 along broadcast dimensions. */
typedef struct {
    int32_t out_dims[NL_MAX_DIMS];
    int32_t in1_strides[NL_MAX_DIMS];
    int32_t in2_strides[NL_MAX_DIMS];
    int32_t in1_offset, in2_offset, output_offset, left_shift;
    int32_t in1_mult, in1_shift, in2_mult, in2_shift, out_mult, out_shift;
    int32_t act_min, act_max;
} nl_add_params_t;
void nl_add(const nl_add_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);

typedef struct {
    int32_t out_dims[NL_MAX_DIMS];
    int32_t in1_strides[NL_MAX_DIMS];
    int32_t in2_strides[NL_MAX_DIMS];
    int32_t in1_offset, in2_offset, output_offset;
    int32_t out_mult, out_shift, act_min, act_max;
} nl_mul_params_t;
void nl_mul(const nl_mul_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);

/* AVERAGE_POOL_2D and MAX_POOL_2D (same quantisation in and out). */
typedef struct {
    int32_t batches, in_h, in_w, channels, out_h, out_w;
    int32_t filter_h, filter_w, stride_h, stride_w, pad_h, pad_w;
    int32_t act_min, act_max;
} nl_pool_params_t;
void nl_avg_pool2d(const nl_pool_params_t *p, const int8_t *in, int8_t *out);
void nl_max_pool2d(const nl_pool_params_t *p, const int8_t *in, int8_t *out);

/* SOFTMAX over the last dimension, TFLite's float lookup-table algorithm. */
typedef struct {
    int32_t rows, depth, output_zero_point;
    float output_scale;
    const float *table; /* 256 entries: table[255 - d] = exp(-input_scale * beta * d) */
} nl_softmax_params_t;
void nl_softmax(const nl_softmax_params_t *p, const int8_t *in, int8_t *out);

/* LOGISTIC (and any other int8 -> int8 unary op) through a 256-entry table indexed by q + 128. */
typedef struct {
    int32_t size;
    const int8_t *table;
} nl_lut_params_t;
void nl_logistic(const nl_lut_params_t *p, const int8_t *in, int8_t *out);

/* MEAN over H and W of a 4-D tensor (keep_dims). */
typedef struct {
    int32_t batches, in_h, in_w, channels;
    int32_t input_zero_point, output_zero_point, mult, shift; /* ~ in_scale / (out_scale * H * W) */
} nl_mean_params_t;
void nl_mean(const nl_mean_params_t *p, const int8_t *in, int8_t *out);

/* Strided gather: out[i] = in[base + sum_k i_k * in_strides[k]]; TRANSPOSE and STRIDED_SLICE. */
typedef struct {
    int32_t out_dims[NL_MAX_DIMS];
    int32_t in_strides[NL_MAX_DIMS];
    int32_t base;
} nl_gather_params_t;
void nl_transpose(const nl_gather_params_t *p, const int8_t *in, int8_t *out);
void nl_strided_slice(const nl_gather_params_t *p, const int8_t *in, int8_t *out);

/* RESHAPE (and SQUEEZE, EXPAND_DIMS): a byte copy unless the planner placed both in one slot. */
void nl_reshape(int32_t bytes, const void *in, void *out);

/* CONCATENATION of inputs sharing the output's quantisation. */
typedef struct {
    int32_t num_inputs, outer, inner;
    const int32_t *axis_sizes;
} nl_concat_params_t;
void nl_concatenation(const nl_concat_params_t *p, const int8_t *const *ins, int8_t *out);

/* PAD / PADV2 with a constant value. */
typedef struct {
    int32_t out_dims[NL_MAX_DIMS];
    int32_t in_dims[NL_MAX_DIMS];
    int32_t before[NL_MAX_DIMS];
    int32_t pad_value;
} nl_pad_params_t;
void nl_pad(const nl_pad_params_t *p, const int8_t *in, int8_t *out);

/* BATCH_MATMUL: out[b] = lhs[b] (rows x depth) * rhs[b] (depth x cols); strides express adj_x/adj_y. */
typedef struct {
    int32_t batches, rows, cols, depth;
    int32_t lhs_batch_stride, lhs_row_stride, lhs_depth_stride;
    int32_t rhs_batch_stride, rhs_depth_stride, rhs_col_stride;
    int32_t lhs_offset, rhs_offset, output_offset, out_mult, out_shift;
    int32_t act_min, act_max;
} nl_batch_matmul_params_t;
void nl_batch_matmul(const nl_batch_matmul_params_t *p, const int8_t *lhs, const int8_t *rhs,
                     int8_t *out);

/* RESIZE_NEAREST_NEIGHBOR: the source row/column of every output row/column is precomputed. */
typedef struct {
    int32_t batches, in_h, in_w, channels, out_h, out_w;
    const int32_t *y_map;
    const int32_t *x_map;
} nl_resize_nearest_params_t;
void nl_resize_nearest_neighbor(const nl_resize_nearest_params_t *p, const int8_t *in, int8_t *out);

/* RESIZE_BILINEAR, TFLite's 10-bit integer interpolation; coordinates precomputed. */
typedef struct {
    int32_t batches, in_h, in_w, channels, out_h, out_w;
    const int32_t *y_scaled; /* per output row: (y * scale) in Q10 */
    const int32_t *y_lo;
    const int32_t *y_hi;
    const int32_t *x_scaled;
    const int32_t *x_lo;
    const int32_t *x_hi;
} nl_resize_bilinear_params_t;
void nl_resize_bilinear(const nl_resize_bilinear_params_t *p, const int8_t *in, int8_t *out);

/* RELU / RELU6 int8: requantise to the output scale, then clamp to the activation range. */
typedef struct {
    int32_t size, input_zero_point, output_zero_point, mult, shift, act_min, act_max;
} nl_relu_params_t;
void nl_relu(const nl_relu_params_t *p, const int8_t *in, int8_t *out);

/* QUANTIZE int8 -> int8 (requantise), float -> int8, and DEQUANTIZE int8 -> float. */
typedef struct {
    int32_t size, input_zero_point, output_zero_point, mult, shift;
} nl_requantize_params_t;
void nl_requantize(const nl_requantize_params_t *p, const int8_t *in, int8_t *out);

typedef struct {
    int32_t size, zero_point;
    float scale;
} nl_affine_params_t;
void nl_quantize_f32(const nl_affine_params_t *p, const float *in, int8_t *out);
void nl_dequantize(const nl_affine_params_t *p, const int8_t *in, float *out);

#endif /* NLPOOL_KERNELS_H */
