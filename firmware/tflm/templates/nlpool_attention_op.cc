/*
 * TFLM kernel of NLPOOL_ATTENTION.
 *
 * Init parses the FlexBuffer options once into persistent memory: one fixed-size OpData and one
 * buffer for every variable-length array, laid out in a fixed order (both defined in
 * nlpool_attention_op_data.h), so that the kernel's persistent bytes follow from the options alone
 * and a memory planner can predict them.
 * Prepare checks the tensors against the options (a wrong zero point or table would only show up as
 * degraded accuracy, so it refuses to run with a message naming the mismatch), tabulates the
 * softmax's fixed-point exp with gemmlowp (the functions TFLM's reference SOFTMAX evaluates per
 * score) and requests the streamed scratch through TFLM's scratch-buffer API, so TFLM's planner
 * shares its bytes with tensors that are not live during the op. Eval is integer-only: it binds
 * the tensors and calls nlpool_attention(), the C function nlpool's AOT runtime calls too.
 */
#include "nlpool_attention_op.h"

#include <cstddef>
#include <cstdint>

#include "fixedpoint/fixedpoint.h"
#include "flatbuffers/flexbuffers.h"
#include "nlpool_attention.h"
#include "nlpool_attention_op_data.h"
#include "nlpool_tflm_options.h"
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/kernels/kernel_util.h"
#include "tensorflow/lite/micro/micro_context.h"
#include "tensorflow/lite/micro/micro_log.h"

namespace nlpool {
namespace {

constexpr int kScaledDiffIntegerBits = 5;  // TFLite's int8 SOFTMAX: differences in Q5.26
constexpr int kMaxSteps = 4;         // per branch (nlpool.core.custom_ops.MAX_STEPS)
constexpr int kMaxTokens = 4095;     // a softmax row's exps are summed in int32
constexpr int32_t kSoftmaxOutputOffset = 128;  // the probabilities' zero point is -128
constexpr int kNumInputs = 6;
enum InputIndex { kTokens = 0, kPosTable, kQkvWeights, kQkvBias, kOutWeights, kOutBias };

// The length of a vector option (untyped, typed or fixed-size typed: all are accepted), or -1.
int32_t VectorSize(const flexbuffers::Reference& ref) {
  if (ref.IsFixedTypedVector()) {
    return static_cast<int32_t>(ref.AsFixedTypedVector().size());
  }
  if (ref.IsTypedVector()) {
    return static_cast<int32_t>(ref.AsTypedVector().size());
  }
  if (ref.IsVector() && !ref.IsMap()) {
    return static_cast<int32_t>(ref.AsVector().size());
  }
  return -1;
}

template <typename VectorT, typename T>
bool CopyInts(const VectorT& vec, int64_t lo, int64_t hi, T* out) {
  for (size_t i = 0; i < vec.size(); ++i) {
    int64_t v = 0;
    if (!IntValue(vec[i], &v) || v < lo || v > hi) {
      return false;
    }
    out[i] = static_cast<T>(v);
  }
  return true;
}

// Copies a vector option whose length was checked; false when an element is no integer in [lo, hi].
template <typename T>
bool ReadInts(const flexbuffers::Reference& ref, int64_t lo, int64_t hi, T* out) {
  if (ref.IsFixedTypedVector()) {
    return CopyInts(ref.AsFixedTypedVector(), lo, hi, out);
  }
  if (ref.IsTypedVector()) {
    return CopyInts(ref.AsTypedVector(), lo, hi, out);
  }
  return CopyInts(ref.AsVector(), lo, hi, out);
}

bool IsInt8(int32_t v) { return v >= -128 && v <= 127; }

// The integer options and their ranges (AttentionParams.check() in nlpool.core.custom_ops).
const char* ReadScalars(const flexbuffers::Map& map, OpData* data, const char** key) {
  nlpool_attention_params_t& p = data->params;
  int32_t output_zero_point = 0;
  const struct {
    const char* key;
    int32_t* value;
  } scalars[] = {
      {"tokens", &p.tokens},
      {"width", &p.width},
      {"heads", &p.heads},
      {"input_zero_point", &data->input_zero_point},
      {"output_zero_point", &output_zero_point},
      {"qkv_input_offset", &p.qkv_input_offset},
      {"qkv_filter_offset", &p.qkv_filter_offset},
      {"qkv_output_offset", &p.qkv_output_offset},
      {"q_column", &p.q_column},
      {"k_column", &p.k_column},
      {"v_column", &p.v_column},
      {"score_lhs_offset", &p.score_lhs_offset},
      {"score_rhs_offset", &p.score_rhs_offset},
      {"score_multiplier", &p.score_multiplier},
      {"score_shift", &p.score_shift},
      {"score_output_offset", &p.score_output_offset},
      {"softmax_multiplier", &data->softmax_multiplier},
      {"softmax_left_shift", &data->softmax_left_shift},
      {"softmax_diff_min", &p.softmax_diff_min},
      {"mix_rhs_offset", &p.mix_rhs_offset},
      {"mix_multiplier", &p.mix_multiplier},
      {"mix_shift", &p.mix_shift},
      {"mix_output_offset", &p.mix_output_offset},
      {"out_input_offset", &p.out_input_offset},
      {"out_filter_offset", &p.out_filter_offset},
      {"fc_double_rounding", &p.fc_double_rounding},
  };
  for (const auto& s : scalars) {
    if (!ReadInt(map, s.key, s.value)) {
      *key = s.key;
      return "is missing or not an integer in int32 range";
    }
  }
  p.output_offset = output_zero_point;
  p.mix_lhs_offset = kSoftmaxOutputOffset;
  if (p.tokens < 1 || p.width < 1 || p.heads < 1 || p.width % p.heads != 0) {
    return "tokens, width and heads must be >= 1 and width divisible by heads";
  }
  if (p.tokens > kMaxTokens) {
    return "more than 4095 tokens: the fixed-point softmax sums a row in int32";
  }
  p.head_dim = p.width / p.heads;
  const int32_t columns[3] = {p.q_column, p.k_column, p.v_column};
  for (int32_t column : columns) {
    if (column < 0 || column > 2 * p.width) {
      return "q_column, k_column and v_column must each select width of the 3 x width projected "
             "columns";
    }
  }
  if (!IsInt8(data->input_zero_point) || !IsInt8(output_zero_point) ||
      !IsInt8(p.qkv_output_offset) || !IsInt8(p.score_output_offset) ||
      !IsInt8(p.mix_output_offset) || !IsInt8(-p.qkv_input_offset) ||
      !IsInt8(-p.out_input_offset)) {
    return "zero points must be int8";
  }
  if (p.score_multiplier < 0 || p.mix_multiplier < 0 || p.score_shift < -31 ||
      p.score_shift > 30 || p.mix_shift < -31 || p.mix_shift > 30) {
    return "multipliers must be Q31 with shifts in [-31, 30]";
  }
  if (data->softmax_multiplier <= 0 || data->softmax_left_shift < 0 ||
      data->softmax_left_shift > 30 || p.softmax_diff_min > 0) {
    return "softmax parameters are outside TFLite's fixed-point softmax";
  }
  if (p.fc_double_rounding != 0 && p.fc_double_rounding != 1) {
    *key = "fc_double_rounding";
    return "must be 0 or 1";
  }
  return nullptr;
}

// Steps of one branch: up to kMaxSteps records of NLPOOL_STEP_FIELDS integers, or -1.
int32_t StepCount(const flexbuffers::Map& map, const char* key) {
  const int32_t size = VectorSize(map[key]);
  if (size < 0 || size % NLPOOL_STEP_FIELDS != 0 || size / NLPOOL_STEP_FIELDS > kMaxSteps) {
    return -1;
  }
  return size / NLPOOL_STEP_FIELDS;
}

// How many step records each branch has, and whether there is the positional ADD.
struct StepCounts {
  int32_t pos;       // 0 or 1
  int32_t branch[3];  // q, k, v

  int32_t total() const { return branch[0] + branch[1] + branch[2]; }
};

const char* const kStepKeys[3] = {"q_steps", "k_steps", "v_steps"};

// The step counts from the vectors' lengths, before anything is allocated for them.
const char* ReadStepCounts(const flexbuffers::Map& map, StepCounts* counts, const char** key) {
  const int32_t pos_size = VectorSize(map["pos_step"]);
  if (pos_size != 0 && pos_size != NLPOOL_STEP_FIELDS) {
    *key = "pos_step";
    return "must be empty or one ADD step of 10 integers";
  }
  counts->pos = pos_size / NLPOOL_STEP_FIELDS;
  for (int b = 0; b < 3; ++b) {
    counts->branch[b] = StepCount(map, kStepKeys[b]);
    if (counts->branch[b] < 0) {
      *key = kStepKeys[b];
      return "must be up to 4 step records of 10 integers";
    }
  }
  return nullptr;
}

// Copies every vector option into its place in the arrays buffer, checking length and range.
const char* ReadVectors(const flexbuffers::Map& map, const Arrays& a, int32_t e,
                        const StepCounts& counts, const char** key) {
  const int32_t* n = counts.branch;
  const struct {
    const char* key;
    int32_t length;
    int64_t lo, hi;
    int32_t* words;
    int8_t* bytes;
    const char* error;
  } vectors[] = {
      {"qkv_multiplier", 3 * e, 0, INT32_MAX, a.qkv_multiplier, nullptr,
       "must hold 3 x width Q31 multipliers"},
      {"qkv_shift", 3 * e, -31, 30, a.qkv_shift, nullptr, "must hold 3 x width shifts in [-31, 30]"},
      {"out_multiplier", e, 0, INT32_MAX, a.out_multiplier, nullptr,
       "must hold width Q31 multipliers"},
      {"out_shift", e, -31, 30, a.out_shift, nullptr, "must hold width shifts in [-31, 30]"},
      {"pos_step", NLPOOL_STEP_FIELDS * counts.pos, INT32_MIN, INT32_MAX, a.pos_step, nullptr,
       "must be empty or one ADD step of 10 int32"},
      {"q_steps", NLPOOL_STEP_FIELDS * n[0], INT32_MIN, INT32_MAX, a.q_steps, nullptr,
       "must hold int32 step records"},
      {"k_steps", NLPOOL_STEP_FIELDS * n[1], INT32_MIN, INT32_MAX, a.k_steps, nullptr,
       "must hold int32 step records"},
      {"v_steps", NLPOOL_STEP_FIELDS * n[2], INT32_MIN, INT32_MAX, a.v_steps, nullptr,
       "must hold int32 step records"},
      {"q_consts", e * n[0], -128, 127, nullptr, a.q_consts,
       "must hold width int8 constants per q step"},
      {"k_consts", e * n[1], -128, 127, nullptr, a.k_consts,
       "must hold width int8 constants per k step"},
      {"v_consts", e * n[2], -128, 127, nullptr, a.v_consts,
       "must hold width int8 constants per v step"},
  };
  for (const auto& v : vectors) {
    const flexbuffers::Reference ref = map[v.key];
    const bool read = VectorSize(ref) == v.length &&
                      (v.words != nullptr ? ReadInts(ref, v.lo, v.hi, v.words)
                                          : ReadInts(ref, v.lo, v.hi, v.bytes));
    if (!read) {
      *key = v.key;
      return v.error;
    }
  }
  return nullptr;
}

// Every step record read is an ADD or a MUL (the positional one an ADD).
const char* CheckStepKinds(const Arrays& a, const StepCounts& counts, const char** key) {
  if (counts.pos == 1 && a.pos_step[0] != NLPOOL_STEP_ADD) {
    *key = "pos_step";
    return "must be an ADD step";
  }
  const int32_t* const branch_steps[3] = {a.q_steps, a.k_steps, a.v_steps};
  for (int b = 0; b < 3; ++b) {
    for (int32_t s = 0; s < counts.branch[b]; ++s) {
      const int32_t kind = branch_steps[b][s * NLPOOL_STEP_FIELDS];
      if (kind != NLPOOL_STEP_ADD && kind != NLPOOL_STEP_MUL) {
        *key = kStepKeys[b];
        return "step kinds must be ADD (0) or MUL (1)";
      }
    }
  }
  return nullptr;
}

// Points the C params at the arrays (the exp table is filled by Prepare).
void BindArrays(const Arrays& a, const StepCounts& counts, nlpool_attention_params_t* p) {
  p->softmax_exp_table = a.exp_table;
  p->qkv_multiplier = a.qkv_multiplier;
  p->qkv_shift = a.qkv_shift;
  p->out_multiplier = a.out_multiplier;
  p->out_shift = a.out_shift;
  p->pos_step = counts.pos == 1 ? a.pos_step : nullptr;
  p->q_steps = a.q_steps;
  p->k_steps = a.k_steps;
  p->v_steps = a.v_steps;
  p->q_consts = a.q_consts;
  p->k_consts = a.k_consts;
  p->v_consts = a.v_consts;
}

// Init's work: the scalars, then the step counts, then one persistent buffer sized by them (the
// vectors' lengths are checked against the width before it is allocated), then the vectors into it.
const char* ParseOptions(TfLiteContext* context, const char* buffer, size_t length, OpData* data,
                         const char** key) {
  flexbuffers::Map map = flexbuffers::Map::EmptyMap();
  const char* error = OptionsMap(buffer, length, &map);
  if (error == nullptr) error = ReadScalars(map, data, key);
  StepCounts counts = {};
  if (error == nullptr) error = ReadStepCounts(map, &counts, key);
  if (error != nullptr) {
    return error;
  }
  nlpool_attention_params_t& p = data->params;
  p.q_step_count = counts.branch[0];
  p.k_step_count = counts.branch[1];
  p.v_step_count = counts.branch[2];
  const int32_t e = p.width;
  // Every vector length is checked by ReadVectors; this one first bounds the width by the options'
  // size, before it sizes the buffer.
  if (VectorSize(map["qkv_multiplier"]) != 3 * static_cast<int64_t>(e)) {
    *key = "qkv_multiplier";
    return "must hold 3 x width Q31 multipliers";
  }
  const ArraysLayout layout = Layout(e, counts.pos, counts.total());
  void* raw = context->AllocatePersistentBuffer(context, static_cast<size_t>(layout.bytes));
  if (raw == nullptr) {
    return "no arena space for the op's arrays";
  }
  const Arrays arrays = ArraysAt(static_cast<int32_t*>(raw), e, counts.pos, counts.branch);
  data->arrays = arrays.exp_table;
  error = ReadVectors(map, arrays, e, counts, key);
  if (error == nullptr) error = CheckStepKinds(arrays, counts, key);
  if (error == nullptr) BindArrays(arrays, counts, &p);
  return error;
}

void* Init(TfLiteContext* context, const char* buffer, size_t length) {
  OpData* data = NewOpData<OpData>(context);
  if (data != nullptr) {
    data->options_error = ParseOptions(context, buffer, length, data, &data->options_key);
  }
  return data;
}

int64_t NumElements(const TfLiteTensor* t) {
  int64_t count = 1;
  for (int i = 0; i < t->dims->size; ++i) {
    count *= t->dims->data[i];
  }
  return count;
}

// Whether `t` is a constant (flatbuffer) tensor of `type` with `elements` elements.
bool IsConstant(const TfLiteTensor* t, TfLiteType type, int64_t elements) {
  return t->allocation_type == kTfLiteMmapRo && t->type == type && NumElements(t) == elements;
}

// Checks the tensors against the options (what nlpool's AOT Prepare checks too).
TfLiteStatus Validate(TfLiteTensor* const* in, const TfLiteTensor* out, const OpData* data) {
  const nlpool_attention_params_t& p = data->params;
  const int64_t n = p.tokens;
  const int64_t e = p.width;
  if (in[kTokens] == nullptr || in[kQkvWeights] == nullptr || in[kOutWeights] == nullptr ||
      out == nullptr) {
    MicroPrintf("NLPOOL_ATTENTION: tokens, qkv_weights, out_weights and the output are required");
    return kTfLiteError;
  }
  const TfLiteTensor* const io[2] = {in[kTokens], out};
  const int32_t zero_points[2] = {data->input_zero_point, p.output_offset};
  const char* const names[2] = {"tokens", "output"};
  for (int i = 0; i < 2; ++i) {
    if (io[i]->type != kTfLiteInt8 || NumElements(io[i]) != n * e) {
      MicroPrintf("NLPOOL_ATTENTION: %s must be int8 with %d x %d elements, as the options say",
                  names[i], static_cast<int>(n), static_cast<int>(e));
      return kTfLiteError;
    }
    float scale;
    int32_t zero_point;
    if (!PerTensorQuant(io[i], &scale, &zero_point)) {
      MicroPrintf("NLPOOL_ATTENTION: %s must be quantised per tensor", names[i]);
      return kTfLiteError;
    }
    if (zero_point != zero_points[i]) {
      MicroPrintf("NLPOOL_ATTENTION: %s zero point %d disagrees with the options (%d)", names[i],
                  static_cast<int>(zero_point), static_cast<int>(zero_points[i]));
      return kTfLiteError;
    }
  }
  if ((p.pos_step != nullptr) != (in[kPosTable] != nullptr)) {
    MicroPrintf("NLPOOL_ATTENTION: positional step and table do not come together (pos_step %s, "
                "pos_table input %s)",
                p.pos_step != nullptr ? "set" : "empty",
                in[kPosTable] != nullptr ? "present" : "absent");
    return kTfLiteError;
  }
  const struct {
    int index;
    const char* name;
    TfLiteType type;
    int64_t elements;
  } constants[] = {
      {kPosTable, "pos_table", kTfLiteInt8, n * e},
      {kQkvWeights, "qkv_weights", kTfLiteInt8, 3 * e * e},
      {kQkvBias, "qkv_bias", kTfLiteInt32, 3 * e},
      {kOutWeights, "out_weights", kTfLiteInt8, e * e},
      {kOutBias, "out_bias", kTfLiteInt32, e},
  };
  for (const auto& c : constants) {
    const TfLiteTensor* t = in[c.index];
    if (t != nullptr && !IsConstant(t, c.type, c.elements)) {
      MicroPrintf("NLPOOL_ATTENTION: %s must be a constant %s tensor of %d elements", c.name,
                  c.type == kTfLiteInt8 ? "int8" : "int32", static_cast<int>(c.elements));
      return kTfLiteError;
    }
  }
  return kTfLiteOk;
}

// table[i] = exp of a score difference of -i in Q0.31, as TFLite's reference int8 SOFTMAX computes
// it: the difference rescaled by its Prepare's multiplier and left shift to Q5.26, then gemmlowp's
// exp_on_negative_values (nlpool.core.fixedpoint.softmax_exp_table).
void FillExpTable(int32_t multiplier, int32_t left_shift, int32_t* table) {
  using ScaledDiff = gemmlowp::FixedPoint<int32_t, kScaledDiffIntegerBits>;
  for (int i = 0; i < kExpTableSize; ++i) {
    // Saturated like the golden model; below softmax_diff_min (where it could saturate) the kernel
    // never reads the entry.
    int64_t shifted = -static_cast<int64_t>(i) * (static_cast<int64_t>(1) << left_shift);
    if (shifted < INT32_MIN) {
      shifted = INT32_MIN;
    }
    const int32_t rescaled =
        gemmlowp::SaturatingRoundingDoublingHighMul(static_cast<int32_t>(shifted), multiplier);
    table[i] = gemmlowp::exp_on_negative_values(ScaledDiff::FromRaw(rescaled)).raw();
  }
}

TfLiteStatus Prepare(TfLiteContext* context, TfLiteNode* node) {
  OpData* data = static_cast<OpData*>(node->user_data);
  if (data == nullptr) {
    MicroPrintf("NLPOOL_ATTENTION: no arena space for the op data");
    return kTfLiteError;
  }
  if (data->options_error != nullptr) {
    if (data->options_key != nullptr) {
      MicroPrintf("NLPOOL_ATTENTION: option %s %s", data->options_key, data->options_error);
    } else {
      MicroPrintf("NLPOOL_ATTENTION: %s", data->options_error);
    }
    return kTfLiteError;
  }
  if (node->inputs->size != kNumInputs || node->outputs->size != 1) {
    MicroPrintf("NLPOOL_ATTENTION: expects %d inputs (tokens, pos_table, qkv_weights, qkv_bias, "
                "out_weights, out_bias; -1 for an absent optional one) and 1 output, got %d and %d",
                kNumInputs, node->inputs->size, node->outputs->size);
    return kTfLiteError;
  }
  nltflm::MicroContext* micro_context = nltflm::GetMicroContext(context);
  TfLiteTensor* in[kNumInputs];
  for (int i = 0; i < kNumInputs; ++i) {
    in[i] = micro_context->AllocateTempInputTensor(node, i);  // nullptr for an absent input
  }
  TfLiteTensor* out = micro_context->AllocateTempOutputTensor(node, 0);
  TfLiteStatus status = Validate(in, out, data);
  for (TfLiteTensor* t : in) {
    if (t != nullptr) micro_context->DeallocateTempTfLiteTensor(t);
  }
  if (out != nullptr) micro_context->DeallocateTempTfLiteTensor(out);
  if (status != kTfLiteOk) {
    return status;
  }
  FillExpTable(data->softmax_multiplier, data->softmax_left_shift, data->arrays);
  const int32_t scratch = nlpool_attention_scratch_bytes(&data->params);
  status = context->RequestScratchBufferInArena(context, static_cast<size_t>(scratch),
                                                &data->scratch_index);
  if (status != kTfLiteOk) {
    MicroPrintf("NLPOOL_ATTENTION: requesting %d bytes of scratch failed", static_cast<int>(scratch));
  }
  return status;
}

template <typename T>
const T* DataOrNull(const TfLiteEvalTensor* t) {
  return t == nullptr ? nullptr : nltflm::micro::GetTensorData<T>(t);
}

TfLiteStatus Eval(TfLiteContext* context, TfLiteNode* node) {
  OpData* data = static_cast<OpData*>(node->user_data);
  nlpool_attention_params_t& p = data->params;
  const TfLiteEvalTensor* tokens = nltflm::micro::GetEvalInput(context, node, kTokens);
  TfLiteEvalTensor* out = nltflm::micro::GetEvalOutput(context, node, 0);
  p.pos_table = p.pos_step != nullptr
                    ? DataOrNull<int8_t>(nltflm::micro::GetEvalInput(context, node, kPosTable))
                    : nullptr;
  p.qkv_weights = DataOrNull<int8_t>(nltflm::micro::GetEvalInput(context, node, kQkvWeights));
  p.qkv_bias = DataOrNull<int32_t>(nltflm::micro::GetEvalInput(context, node, kQkvBias));
  p.out_weights = DataOrNull<int8_t>(nltflm::micro::GetEvalInput(context, node, kOutWeights));
  p.out_bias = DataOrNull<int32_t>(nltflm::micro::GetEvalInput(context, node, kOutBias));
  int8_t* scratch = static_cast<int8_t*>(context->GetScratchBuffer(context, data->scratch_index));
  if (scratch == nullptr) {
    MicroPrintf("NLPOOL_ATTENTION: no scratch buffer");
    return kTfLiteError;
  }
  nlpool_attention(&p, nltflm::micro::GetTensorData<int8_t>(tokens),
                   nltflm::micro::GetTensorData<int8_t>(out), scratch);
  return kTfLiteOk;
}

}  // namespace

TFLMRegistration Register_NLPOOL_ATTENTION() {
  return nltflm::micro::RegisterOp(Init, Prepare, Eval);
}

}  // namespace nlpool
