// RMS norm and RoPE (norm.h). Each reads its input through its strides when it is not row-contiguous
// (gathered first), writes a dense output, and computes in fp32.

#include "norm.h"

#include "common.h"

namespace runtime_native {

namespace {

using namespace detail;

bool float_dtype(mx::Dtype d) { return d == mx::float32 || d == mx::float16 || d == mx::bfloat16; }

// The value v as it reads after being stored in T (MLX rounds each op's result to its dtype).
template <typename T>
inline float rounded(float v) {
  return to_f(static_cast<T>(v));
}

template <typename T>
void rms_rows(const T* x, const T* w, T* out, size_t rows, int D, float eps) {
  for (size_t r = 0; r < rows; ++r) {
    const T* xr = x + r * D;
    T* o = out + r * D;
    float ss = 0.f;
    for (int d = 0; d < D; ++d) {
      const float v = to_f(xr[d]);
      ss += v * v;
    }
    const float inv = 1.f / std::sqrt(ss / static_cast<float>(D) + eps);
    if (w != nullptr) {
      for (int d = 0; d < D; ++d) o[d] = static_cast<T>(rounded<T>(to_f(xr[d]) * inv) * to_f(w[d]));
    } else {
      for (int d = 0; d < D; ++d) o[d] = static_cast<T>(to_f(xr[d]) * inv);
    }
  }
}

struct RopeProblem {
  int B, N, T, D, dims;
  bool traditional;
  float scale;
  const float* inv_freq;  // [dims/2]
  const int32_t* offsets;  // [1 or B], or null: the fixed offset
  int offset;
  int n_offsets;
};

template <typename T>
void rope_rows(const RopeProblem& p, const T* x, T* out) {
  const int half = p.dims / 2;
  thread_local std::vector<float> cb, sb;
  float* cs = scratch(cb, static_cast<size_t>(p.T) * half);
  float* sn = scratch(sb, static_cast<size_t>(p.T) * half);
  for (int b = 0; b < p.B; ++b) {
    const int off = p.offsets ? p.offsets[p.n_offsets == 1 ? 0 : b] : p.offset;
    // One table of cos/sin per batch row, shared by its heads; rounded to T as MLX's fallback does.
    for (int t = 0; t < p.T; ++t) {
      const float pos = (static_cast<float>(t) + static_cast<float>(off)) * p.scale;
      for (int i = 0; i < half; ++i) {
        const float th = pos * p.inv_freq[i];
        cs[t * half + i] = rounded<T>(std::cos(th));
        sn[t * half + i] = rounded<T>(std::sin(th));
      }
    }
    for (int n = 0; n < p.N; ++n) {
      for (int t = 0; t < p.T; ++t) {
        const size_t row = (static_cast<size_t>(b) * p.N + n) * p.T + t;
        const T* xr = x + row * p.D;
        T* o = out + row * p.D;
        const float* c = cs + t * half;
        const float* s = sn + t * half;
        for (int i = 0; i < half; ++i) {
          const int i1 = p.traditional ? 2 * i : i;
          const int i2 = p.traditional ? 2 * i + 1 : i + half;
          const float x1 = to_f(xr[i1]), x2 = to_f(xr[i2]);
          o[i1] = static_cast<T>(x1 * c[i] - x2 * s[i]);
          o[i2] = static_cast<T>(x1 * s[i] + x2 * c[i]);
        }
        for (int d = p.dims; d < p.D; ++d) o[d] = xr[d];
      }
    }
  }
}

}  // namespace

mx::array rms_norm(const mx::array& x, const std::optional<mx::array>& weight, float eps) {
  auto fail = [](const std::string& m) { throw std::invalid_argument("[native.rms_norm] " + m); };
  if (x.ndim() == 0 || !float_dtype(x.dtype())) fail("x must be a float array with at least one dim");
  if (weight && (weight->ndim() != 1 || weight->shape(0) != x.shape(-1) || weight->dtype() != x.dtype()))
    fail("weight must be 1-D, of x's last size and dtype");
  auto s = mx::default_stream(mx::Device::cpu);
  std::vector<mx::array> in{x};
  if (weight) in.push_back(as_row_contiguous(*weight, s));
  return mx::array(x.shape(), x.dtype(), std::make_shared<NativeRMSNorm>(s, eps, weight.has_value()), in);
}

void NativeRMSNorm::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  auto& out = outputs[0];
  out.set_data(mx::allocator::malloc(out.nbytes()));
  if (out.size() == 0) return;
  const auto& x = inputs[0];
  if (weighted_ && !inputs[1].flags().row_contiguous) throw std::runtime_error("[NativeRMSNorm] weight not dense");
  auto& enc = mx::cpu::get_command_encoder(stream());
  for (const auto& a : inputs) enc.set_input_array(a);
  enc.set_output_array(out);
  const int D = x.shape(-1);
  const size_t rows = x.size() / D;
  const Strided view = strided_view(x);
  const float eps = eps_;
  auto go = [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    const T* wp = weighted_ ? inputs[1].data<T>() : nullptr;
    T* op = out.data<T>();
    enc.dispatch([=] {
      thread_local std::vector<T> xb;
      rms_rows(row_major(xp, view, xb), wp, op, rows, D, eps);
    });
  };
  with_float_type(x.dtype(), go);
}

void NativeRMSNorm::eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) {
  throw std::runtime_error("[NativeRMSNorm] CPU only");
}

bool NativeRMSNorm::is_equivalent(const mx::Primitive& other) const {
  const auto& o = static_cast<const NativeRMSNorm&>(other);
  return eps_ == o.eps_ && weighted_ == o.weighted_;
}

mx::array rope(const mx::array& x, int dims, bool traditional, std::optional<float> base, float scale, int offset,
               const std::optional<mx::array>& offsets, const std::optional<mx::array>& freqs) {
  auto fail = [](const std::string& m) { throw std::invalid_argument("[native.rope] " + m); };
  if (x.ndim() < 3 || !float_dtype(x.dtype())) fail("x must be a float array with at least 3 dims");
  if (dims <= 0 || dims % 2 != 0 || dims > x.shape(-1)) fail("dims must be even, positive and at most x's last size");
  if (base.has_value() == freqs.has_value()) fail("exactly one of base and freqs is needed");
  auto s = mx::default_stream(mx::Device::cpu);
  std::vector<mx::array> in{x};
  if (offsets) {
    if (offsets->ndim() > 1 || (offsets->size() != 1 && offsets->size() != static_cast<size_t>(x.shape(0))))
      fail("offset must be a scalar or hold one value per batch row");
    if (!mx::issubdtype(offsets->dtype(), mx::integer)) fail("offset must be an integer array");
    in.push_back(mx::astype(*offsets, mx::int32, s));
  }
  if (freqs) {
    if (freqs->ndim() != 1 || freqs->shape(0) != dims / 2) fail("freqs must be 1-D with dims/2 values");
    in.push_back(mx::astype(*freqs, mx::float32, s));
  }
  return mx::array(x.shape(), x.dtype(),
                   std::make_shared<NativeRoPE>(s, dims, traditional, base.value_or(0.f), scale, offset,
                                                offsets.has_value(), freqs.has_value()),
                   in);
}

void NativeRoPE::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  auto& out = outputs[0];
  out.set_data(mx::allocator::malloc(out.nbytes()));
  if (out.size() == 0) return;
  const auto& x = inputs[0];
  auto& enc = mx::cpu::get_command_encoder(stream());
  for (const auto& a : inputs) enc.set_input_array(a);
  enc.set_output_array(out);
  const int D = x.shape(-1), T = x.shape(-2), B = x.shape(0);
  const int N = static_cast<int>(x.size() / (static_cast<size_t>(B) * T * D));
  const Strided view = strided_view(x);
  size_t next = 1;
  const int32_t* offs = nullptr;
  int n_offs = 0;
  if (offsets_) {
    const auto& o = inputs[next++];
    if (!o.flags().row_contiguous) throw std::runtime_error("[NativeRoPE] offsets not dense");
    offs = o.data<int32_t>();
    n_offs = static_cast<int>(o.size());
  }
  const float* fr = freqs_ ? inputs[next].data<float>() : nullptr;
  if (freqs_ && !inputs[next].flags().row_contiguous) throw std::runtime_error("[NativeRoPE] freqs not dense");
  RopeProblem p{B, N, T, D, dims_, traditional_, scale_, nullptr, offs, offset_, n_offs};
  const float base = base_;
  auto go = [&](auto tag) {
    using TT = decltype(tag);
    const TT* xp = x.data<TT>();
    TT* op = out.data<TT>();
    enc.dispatch([=]() mutable {
      const int half = p.dims / 2;
      thread_local std::vector<float> ib;
      float* inv = scratch(ib, static_cast<size_t>(half));
      if (fr != nullptr) {
        for (int i = 0; i < half; ++i) inv[i] = 1.f / fr[i];
      } else {  // as MLX: exp(-i * log(base) / half), in fp32
        const float step = std::log(base) / static_cast<float>(half);
        for (int i = 0; i < half; ++i) inv[i] = std::exp(-static_cast<float>(i) * step);
      }
      p.inv_freq = inv;
      thread_local std::vector<TT> xb;
      rope_rows(p, row_major(xp, view, xb), op);
    });
  };
  with_float_type(x.dtype(), go);
}

void NativeRoPE::eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) {
  throw std::runtime_error("[NativeRoPE] CPU only");
}

bool NativeRoPE::is_equivalent(const mx::Primitive& other) const {
  const auto& o = static_cast<const NativeRoPE&>(other);
  return dims_ == o.dims_ && traditional_ == o.traditional_ && base_ == o.base_ && scale_ == o.scale_ &&
         offset_ == o.offset_ && offsets_ == o.offsets_ && freqs_ == o.freqs_;
}

}  // namespace runtime_native
