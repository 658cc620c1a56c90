// Attention for the CPU. MLX's CPU backend has no fused attention: mx.fast.scaled_dot_product_attention
// falls back to matmul + softmax + matmul, which for fp16/bf16 runs MLX's own half-precision gemm
// (measured on the 134M 4-bit llama, 2026-12-02: attention was half of a 256-token prefill and half
// of a decode step at 256 tokens of context). Here each query row is one pass over its keys:
// scores q.k in fp32 (k widened in registers), an exact softmax, then the weighted sum of the values
// in fp32, rounded once to the output type. Rows are split across the pool.

#include "attn.h"

#include "common.h"

namespace runtime_native {

namespace {

using namespace detail;

struct View {  // one 4-D input: base pointer and strides in elements
  const void* data;
  int64_t s0, s1, s2, s3;
};

enum class MaskKind { none, boolean, additive_f32, additive_f16, additive_bf16 };

struct Problem {
  int B, Hq, Hk, Lq, Lk, D, Dv;
  float scale;
  bool causal;
  View q, k, v;
  MaskKind mask_kind;
  View mask;  // [B, Hq, Lq, Lk] through its strides
  void* out;  // [B, Hq, Lq, Dv], dense
};

// The mask's value for key j of a row: false/-inf drops the key, a float is added to its score.
inline float mask_value(const Problem& p, const char* row, int j) {
  const int64_t at = j * p.mask.s3;
  switch (p.mask_kind) {
    case MaskKind::boolean: return reinterpret_cast<const bool*>(row)[at] ? 0.f : -INFINITY;
    case MaskKind::additive_f32: return reinterpret_cast<const float*>(row)[at];
    case MaskKind::additive_f16: return to_f(reinterpret_cast<const mx::float16_t*>(row)[at]);
    case MaskKind::additive_bf16: return to_f(reinterpret_cast<const mx::bfloat16_t*>(row)[at]);
    default: return 0.f;
  }
}

inline size_t mask_item_size(MaskKind k) {
  return k == MaskKind::boolean ? 1 : k == MaskKind::additive_f32 ? 4 : 2;
}

#if RN_X86
#define RN_AVX2A RN_AVX2_F16C

// q (fp32, D values) . k row (T): 8 at a time, two chains.
template <typename T>
RN_AVX2A inline float dot_avx2(const float* q, const T* k, int D) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  int d = 0;
  for (; d + 16 <= D; d += 16) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), widen8(k + d), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d + 8), widen8(k + d + 8), a1);
  }
  for (; d + 8 <= D; d += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), widen8(k + d), a0);
  float s = hsum8(_mm256_add_ps(a0, a1));
  for (; d < D; ++d) s += q[d] * to_f(k[d]);
  return s;
}

// acc (fp32, Dv values) += p * v row (T).
template <typename T>
RN_AVX2A inline void axpy_avx2(float* acc, float p, const T* v, int Dv) {
  const __m256 pv = _mm256_set1_ps(p);
  int d = 0;
  for (; d + 8 <= Dv; d += 8)
    _mm256_storeu_ps(acc + d, _mm256_fmadd_ps(pv, widen8(v + d), _mm256_loadu_ps(acc + d)));
  for (; d < Dv; ++d) acc[d] += p * to_f(v[d]);
}
#endif

template <typename T>
float dot_scalar(const float* q, const T* k, int D, int64_t ks) {
  float s = 0.f;
  for (int d = 0; d < D; ++d) s += q[d] * to_f(k[d * ks]);
  return s;
}

template <typename T>
void axpy_scalar(float* acc, float p, const T* v, int Dv, int64_t vs) {
  for (int d = 0; d < Dv; ++d) acc[d] += p * to_f(v[d * vs]);
}

// Rows [r0, r1) of the flattened (b, hq, i) index. AVX2: every row dense (last stride 1).
template <typename T, bool AVX2>
void rows(const Problem& p, int r0, int r1) {
  thread_local std::vector<float> qb, sb, ab;
  float* qf = scratch(qb, static_cast<size_t>(p.D));
  float* sc = scratch(sb, static_cast<size_t>(p.Lk));
  float* acc = scratch(ab, static_cast<size_t>(p.Dv));
  const int group = p.Hq / p.Hk;
  const T* Q = static_cast<const T*>(p.q.data);
  const T* Kp = static_cast<const T*>(p.k.data);
  const T* Vp = static_cast<const T*>(p.v.data);
  T* O = static_cast<T*>(p.out);
  for (int r = r0; r < r1; ++r) {
    const int i = r % p.Lq, h = (r / p.Lq) % p.Hq, b = r / (p.Lq * p.Hq);
    const int hk = h / group;
    const T* qr = Q + b * p.q.s0 + h * p.q.s1 + i * p.q.s2;
    for (int d = 0; d < p.D; ++d) qf[d] = to_f(qr[d * p.q.s3]) * p.scale;
    const int n = p.causal ? std::min(p.Lk, i + p.Lk - p.Lq + 1) : p.Lk;
    const T* kb = Kp + b * p.k.s0 + hk * p.k.s1;
    const T* vb = Vp + b * p.v.s0 + hk * p.v.s1;
    const char* mrow = nullptr;
    if (p.mask_kind != MaskKind::none)
      mrow = static_cast<const char*>(p.mask.data) +
             (b * p.mask.s0 + h * p.mask.s1 + i * p.mask.s2) * static_cast<int64_t>(mask_item_size(p.mask_kind));
    float mxs = -INFINITY;
    for (int j = 0; j < n; ++j) {
#if RN_X86
      const float s = AVX2 ? dot_avx2(qf, kb + j * p.k.s2, p.D) : dot_scalar(qf, kb + j * p.k.s2, p.D, p.k.s3);
#else
      const float s = dot_scalar(qf, kb + j * p.k.s2, p.D, p.k.s3);
#endif
      sc[j] = mrow ? s + mask_value(p, mrow, j) : s;
      mxs = std::max(mxs, sc[j]);
    }
    std::fill(acc, acc + p.Dv, 0.f);
    float total = 0.f;
    for (int j = 0; j < n; ++j) {
      if (sc[j] == -INFINITY) continue;  // a masked key (and every key when all are masked: zeros)
      const float e = std::exp(sc[j] - mxs);
      total += e;
#if RN_X86
      if (AVX2) axpy_avx2(acc, e, vb + j * p.v.s2, p.Dv);
      else axpy_scalar(acc, e, vb + j * p.v.s2, p.Dv, p.v.s3);
#else
      axpy_scalar(acc, e, vb + j * p.v.s2, p.Dv, p.v.s3);
#endif
    }
    const float inv = total > 0.f ? 1.f / total : 0.f;
    T* o = O + (static_cast<size_t>(b * p.Hq + h) * p.Lq + i) * p.Dv;
    for (int d = 0; d < p.Dv; ++d) o[d] = static_cast<T>(acc[d] * inv);
  }
}

template <typename T>
void run(const Problem& p) {
  const int R = p.B * p.Hq * p.Lq;
  const bool avx2 = use_avx2() && p.k.s3 == 1 && p.v.s3 == 1;
  auto part = [&](int r0, int r1) {
    if (avx2) rows<T, true>(p, r0, r1);
    else rows<T, false>(p, r0, r1);
  };
  Pool& pl = pool();
  // Work ~ rows x keys x (D + Dv); a decode step's few rows stay on this thread.
  const double work = static_cast<double>(R) * p.Lk * (p.D + p.Dv);
  if (pl.size() == 1 || work < (1 << 18)) {
    part(0, R);
    return;
  }
  const int nc = std::min(R, 8 * pl.size());
  pl.run_chunks(nc, [&](int c) {
    // more chunks than threads, taken as they come: with a causal mask later rows see more keys
    const int per = (R + nc - 1) / nc;
    part(std::min(R, c * per), std::min(R, (c + 1) * per));
  });
}

bool float_dtype(mx::Dtype d) { return d == mx::float32 || d == mx::float16 || d == mx::bfloat16; }

View view_of(const mx::array& a) {
  return View{a.data<void>(), a.strides()[0], a.strides()[1], a.strides()[2], a.strides()[3]};
}

}  // namespace

mx::array attention(const mx::array& q, const mx::array& k, const mx::array& v, float scale, bool causal,
                    const std::optional<mx::array>& mask) {
  auto fail = [](const std::string& m) { throw std::invalid_argument("[native.attention] " + m); };
  if (q.ndim() != 4 || k.ndim() != 4 || v.ndim() != 4) fail("q, k and v must be 4-D [B, H, L, D]");
  if (!float_dtype(q.dtype()) || k.dtype() != q.dtype() || v.dtype() != q.dtype())
    fail("q, k and v must share one float dtype (fp32, fp16 or bf16)");
  if (k.shape(0) != q.shape(0) || v.shape(0) != q.shape(0)) fail("batch sizes differ");
  if (k.shape(1) == 0 || q.shape(1) % k.shape(1) != 0 || v.shape(1) != k.shape(1))
    fail("q's heads must be a multiple of k's, and v must have k's heads");
  if (k.shape(3) != q.shape(3)) fail("q and k must have the same head dim");
  if (v.shape(2) != k.shape(2)) fail("k and v must have the same length");
  if (causal && k.shape(2) < q.shape(2)) fail("a causal mask needs at least as many keys as queries");
  if (mask) {
    if (causal) fail("give either causal or a mask array, not both");
    const mx::Shape want{q.shape(0), q.shape(1), q.shape(2), k.shape(2)};
    if (mask->shape() != want) fail("the mask must have shape [B, Hq, Lq, Lk] (broadcast it first)");
    if (mask->dtype() != mx::bool_ && !float_dtype(mask->dtype())) fail("the mask must be bool or float");
  }
  auto s = mx::default_stream(mx::Device::cpu);
  mx::Shape out_shape = q.shape();
  out_shape[3] = v.shape(3);
  std::vector<mx::array> in{q, k, v};
  if (mask) in.push_back(*mask);
  return mx::array(out_shape, q.dtype(), std::make_shared<NativeAttention>(s, scale, causal, mask.has_value()), in);
}

void NativeAttention::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  auto& out = outputs[0];
  out.set_data(mx::allocator::malloc(out.nbytes()));
  if (out.size() == 0) return;
  auto& enc = mx::cpu::get_command_encoder(stream());
  // Inputs are read in place through their strides (the KV cache's slices are views with a gap
  // between heads); a view whose last dim is not dense takes the scalar path.
  const auto& in = inputs;
  for (const auto& a : in) enc.set_input_array(a);
  enc.set_output_array(out);
  MaskKind mk = MaskKind::none;
  View mv{nullptr, 0, 0, 0, 0};
  if (masked_) {
    const auto& m = in[3];
    const auto d = m.dtype();
    mk = d == mx::bool_ ? MaskKind::boolean
         : d == mx::float32 ? MaskKind::additive_f32
         : d == mx::float16 ? MaskKind::additive_f16
                            : MaskKind::additive_bf16;
    mv = view_of(m);
  }
  Problem p{in[0].shape(0), in[0].shape(1), in[1].shape(1), in[0].shape(2), in[1].shape(2), in[0].shape(3),
            in[2].shape(3), scale_, causal_, view_of(in[0]), view_of(in[1]), view_of(in[2]), mk, mv, out.data<void>()};
  const auto dt = out.dtype();
  enc.dispatch([p, dt] { with_float_type(dt, [&](auto tag) { run<decltype(tag)>(p); }); });
}

void NativeAttention::eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) {
  throw std::runtime_error("[NativeAttention] CPU only");
}

bool NativeAttention::is_equivalent(const mx::Primitive& other) const {
  const auto& o = static_cast<const NativeAttention&>(other);
  return scale_ == o.scale_ && causal_ == o.causal_ && masked_ == o.masked_;
}

}  // namespace runtime_native
