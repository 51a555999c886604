/*
 * NLPOOL_ATTENTION's persistent memory in TFLM: the fixed OpData and the layout of the one buffer of
 * variable-length arrays that Init allocates. These two definitions are the kernel's whole
 * persistent use, so it follows from the options alone; nlpool's memory planner predicts it from
 * the same numbers (memory_planner/tflm_model.py, attention_kernel_data), and
 * tests/test_tflm_attention_kernel_data.py compiles the planner's numbers against this header for
 * the 32-bit Cortex-M target. The header needs only the C kernel's header, so that test needs no
 * TFLM tree.
 */
#ifndef NLPOOL_ATTENTION_OP_DATA_H_
#define NLPOOL_ATTENTION_OP_DATA_H_

#include <cstdint>

#include "nlpool_attention.h"

namespace nlpool {

constexpr int kExpTableSize = 256;  // one exp per int8 score difference 0..-255
// int32 per column of width E: q/k/v multipliers and shifts (3 + 3), output multiplier and shift (1 + 1).
constexpr int kWordsPerColumn = 8;

// The fixed part of the persistent memory. `params` points into the arrays buffer (options) and,
// from Eval on, into the tensors.
struct OpData {
  nlpool_attention_params_t params;
  int32_t input_zero_point;    // options; checked against the tokens tensor
  int32_t softmax_multiplier;  // TFLite SOFTMAX Prepare's values, for the exp table
  int32_t softmax_left_shift;
  int32_t* arrays;             // the persistent arrays buffer (ArraysLayout), exp table first
  int scratch_index;
  const char* options_error;  // set by Init, reported by Prepare (Init cannot fail with a message)
  const char* options_key;    // the option the error is about, or nullptr
};

// The variable-length arrays, one persistent buffer in this order (E = width; P = 1 with a
// positional table, else 0; S = q, k and v step counts summed):
//   int32: exp table [256], qkv_multiplier [3E], qkv_shift [3E], out_multiplier [E],
//          out_shift [E], pos_step [10 P], q_steps, k_steps, v_steps [10 per step]
//   int8:  q_consts, k_consts, v_consts [E per step]
// = 4 (256 + 8E + 10 (P + S)) + E S bytes.
struct ArraysLayout {
  int32_t words;
  int32_t bytes;
};

constexpr ArraysLayout Layout(int32_t width, int32_t pos_steps, int32_t steps) {
  const int32_t words =
      kExpTableSize + kWordsPerColumn * width + NLPOOL_STEP_FIELDS * (pos_steps + steps);
  return ArraysLayout{words, 4 * words + width * steps};
}

// Where each array starts in a buffer laid out as above (`counts`: q, k and v step counts).
struct Arrays {
  int32_t* exp_table;
  int32_t* qkv_multiplier;
  int32_t* qkv_shift;
  int32_t* out_multiplier;
  int32_t* out_shift;
  int32_t* pos_step;
  int32_t* q_steps;
  int32_t* k_steps;
  int32_t* v_steps;
  int8_t* q_consts;
  int8_t* k_consts;
  int8_t* v_consts;
};

inline Arrays ArraysAt(int32_t* words, int32_t width, int32_t pos_steps, const int32_t counts[3]) {
  Arrays a;
  a.exp_table = words;
  a.qkv_multiplier = a.exp_table + kExpTableSize;
  a.qkv_shift = a.qkv_multiplier + 3 * width;
  a.out_multiplier = a.qkv_shift + 3 * width;
  a.out_shift = a.out_multiplier + width;
  a.pos_step = a.out_shift + width;
  a.q_steps = a.pos_step + NLPOOL_STEP_FIELDS * pos_steps;
  a.k_steps = a.q_steps + NLPOOL_STEP_FIELDS * counts[0];
  a.v_steps = a.k_steps + NLPOOL_STEP_FIELDS * counts[1];
  a.q_consts = reinterpret_cast<int8_t*>(a.v_steps + NLPOOL_STEP_FIELDS * counts[2]);
  a.k_consts = a.q_consts + width * counts[0];
  a.v_consts = a.k_consts + width * counts[1];
  return a;
}

}  // namespace nlpool

#endif  // NLPOOL_ATTENTION_OP_DATA_H_
