// CPU kernels for MLX's affine-quantized matmul (4 and 8 bits, group sizes 32/64/128).
//
// Layout (MLX "affine"): w is [N, K*bits/32] uint32; value k of row n sits in word k/(32/bits) at
// bit offset bits*(k%(32/bits)); w_real = scale[n, k/gs] * q + bias[n, k/gs].
// out[m, n] = sum_g scale_g * dot(x_g, q_g) + bias_g * sum(x_g).
//
// AVX2 path: a "block" is 8 consecutive words (64 values at 4 bits, 32 at 8 bits). Shifting and
// masking one 256-bit load yields, per nibble/byte index j, the 8 values {word i, slot j}; x is
// permuted once per call into that order, so the inner loop is load/shift/and/cvt/fma only.

#include "qmm.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "mlx/backend/cpu/encoder.h"
#include "mlx/utils.h"

namespace runtime_native {

namespace {

// ---------------------------------------------------------------- a tiny persistent pool
class Pool {
 public:
  explicit Pool(int n) : n_(std::max(1, n)) {
    for (int i = 1; i < n_; ++i) std::thread([this, i] { worker(i); }).detach();
  }
  int size() const { return n_; }
  // Runs fn(0..n-1), fn(0) on the calling thread; returns when all are done.
  void run(const std::function<void(int)>& fn) {
    std::lock_guard<std::mutex> call(call_mu_);
    if (n_ == 1) return fn(0);
    {
      std::lock_guard<std::mutex> lk(mu_);
      job_ = &fn;
      pending_.store(n_ - 1);
      ++gen_;
    }
    cv_.notify_all();
    fn(0);
    // Spin briefly (the workers' share is usually done within microseconds), then sleep.
    for (int i = 0; i < 20000 && pending_.load(std::memory_order_acquire) != 0; ++i) _mm_pause();
    if (pending_.load(std::memory_order_acquire) != 0) {
      std::unique_lock<std::mutex> lk(mu_);
      done_cv_.wait(lk, [&] { return pending_.load() == 0; });
    }
  }

 private:
  void worker(int id) {
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int)>* job;
      {
        // Spin a little first: decode calls come back-to-back.
        for (int i = 0; i < 20000 && gen_.load(std::memory_order_acquire) == seen; ++i) _mm_pause();
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return gen_.load() != seen; });
        seen = gen_.load();
        job = job_;
      }
      (*job)(id);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lk(mu_);
        done_cv_.notify_all();
      }
    }
  }
  int n_;
  std::mutex call_mu_, mu_;
  std::condition_variable cv_, done_cv_;
  std::atomic<uint64_t> gen_{0};
  std::atomic<int> pending_{0};
  const std::function<void(int)>* job_ = nullptr;
};

int configured_threads() {
  if (const char* e = std::getenv("RUNTIME_NATIVE_THREADS")) {
    int n = std::atoi(e);
    if (n >= 1) return std::min(n, 64);
  }
  unsigned hw = std::thread::hardware_concurrency();
  return static_cast<int>(std::max(1u, std::min(hw == 0 ? 1u : hw, 2u)));
}

Pool& pool() {
  static Pool* p = new Pool(configured_threads());  // leaked on purpose: no join at exit
  return *p;
}

bool use_avx2() {
  static const bool v = [] {
    const char* e = std::getenv("RUNTIME_NATIVE_ISA");
    if (e && std::strcmp(e, "scalar") == 0) return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return v;
}

template <typename T>
inline float to_f(T v) {
  return static_cast<float>(v);
}

struct Problem {
  int M, N, K, G, gs, bits;
  const float* x;      // [M, K] fp32, natural order
  const float* xp;     // [M, K] fp32, block-permuted (AVX2 path) or null
  const float* xsum;   // [M, G]
  const uint32_t* w;   // [N, K*bits/32]
  const float* s;      // [N, G] fp32
  const float* b;      // [N, G] fp32
  float* out;          // [M, N] fp32
};

// ---------------------------------------------------------------- scalar kernel
void scalar_range(const Problem& p, int n0, int n1) {
  const int per_word = 32 / p.bits;
  const uint32_t mask = (1u << p.bits) - 1u;
  const int wpr = p.K / per_word;
  for (int n = n0; n < n1; ++n) {
    const uint32_t* wr = p.w + static_cast<size_t>(n) * wpr;
    for (int m = 0; m < p.M; ++m) {
      const float* xr = p.x + static_cast<size_t>(m) * p.K;
      float total = 0.f;
      for (int g = 0; g < p.G; ++g) {
        float acc = 0.f;
        for (int k = g * p.gs; k < (g + 1) * p.gs; ++k) {
          uint32_t q = (wr[k / per_word] >> (p.bits * (k % per_word))) & mask;
          acc += xr[k] * static_cast<float>(q);
        }
        total += p.s[static_cast<size_t>(n) * p.G + g] * acc +
            p.b[static_cast<size_t>(n) * p.G + g] * p.xsum[static_cast<size_t>(m) * p.G + g];
      }
      p.out[static_cast<size_t>(m) * p.N + n] = total;
    }
  }
}

// ---------------------------------------------------------------- AVX2 + FMA kernel
__attribute__((target("avx2,fma"))) inline float hsum8(__m256 v) {
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

// MT rows of x against column n.
template <int BITS, int MT>
__attribute__((target("avx2,fma"))) void avx2_column(const Problem& p, int n, int m0) {
  constexpr int PW = 32 / BITS;       // values per word
  constexpr int VPB = 8 * PW;         // values per block of 8 words
  const __m256i mask = _mm256_set1_epi32((1 << BITS) - 1);
  const int nblocks = p.K / VPB;
  const int wpr = p.K / PW;
  const uint32_t* wr = p.w + static_cast<size_t>(n) * wpr;
  const float* sr = p.s + static_cast<size_t>(n) * p.G;
  const float* xr[MT];
  __m256 tot[MT];
  for (int r = 0; r < MT; ++r) {
    xr[r] = p.xp + static_cast<size_t>(m0 + r) * p.K;
    tot[r] = _mm256_setzero_ps();
  }
  const bool split = p.gs < VPB;  // only 4 bits with group 32: a block spans two groups
  for (int blk = 0; blk < nblocks; ++blk) {
    const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + blk * 8));
    __m256 sv;
    if (!split) {
      sv = _mm256_set1_ps(sr[(blk * VPB) / p.gs]);
    } else {
      sv = _mm256_set_m128(_mm_set1_ps(sr[2 * blk + 1]), _mm_set1_ps(sr[2 * blk]));
    }
    __m256 a0[MT], a1[MT];
    for (int r = 0; r < MT; ++r) {
      a0[r] = _mm256_setzero_ps();
      a1[r] = _mm256_setzero_ps();
    }
#pragma GCC unroll 8
    for (int j = 0; j < PW; j += 2) {
      const __m256 q0 = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(wv, BITS * j), mask));
      const __m256 q1 = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(wv, BITS * (j + 1)), mask));
      for (int r = 0; r < MT; ++r) {
        const float* xb = xr[r] + blk * VPB + j * 8;
        a0[r] = _mm256_fmadd_ps(q0, _mm256_loadu_ps(xb), a0[r]);
        a1[r] = _mm256_fmadd_ps(q1, _mm256_loadu_ps(xb + 8), a1[r]);
      }
    }
    for (int r = 0; r < MT; ++r) tot[r] = _mm256_fmadd_ps(_mm256_add_ps(a0[r], a1[r]), sv, tot[r]);
  }
  const float* br = p.b + static_cast<size_t>(n) * p.G;
  for (int r = 0; r < MT; ++r) {
    const float* xs = p.xsum + static_cast<size_t>(m0 + r) * p.G;
    float bsum = 0.f;
    for (int g = 0; g < p.G; ++g) bsum += br[g] * xs[g];
    p.out[static_cast<size_t>(m0 + r) * p.N + n] = hsum8(tot[r]) + bsum;
  }
}

template <int BITS>
void avx2_range(const Problem& p, int n0, int n1) {
  constexpr int NC = 64;  // columns per chunk: their weights stay in cache across the row tiles
  for (int c0 = n0; c0 < n1; c0 += NC) {
    const int c1 = std::min(n1, c0 + NC);
    int m = 0;
    for (; m + 4 <= p.M; m += 4)
      for (int n = c0; n < c1; ++n) avx2_column<BITS, 4>(p, n, m);
    const int rest = p.M - m;
    for (int n = c0; n < c1; ++n) {
      if (rest == 3) avx2_column<BITS, 3>(p, n, m);
      else if (rest == 2) avx2_column<BITS, 2>(p, n, m);
      else if (rest == 1) avx2_column<BITS, 1>(p, n, m);
    }
  }
}

// ---------------------------------------------------------------- driver
template <typename T>
void to_float(const T* src, float* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = to_f(src[i]);
}

template <typename XT, typename ST>
void run_typed(const XT* x_in, const uint32_t* w, const ST* s_in, const ST* b_in, XT* out_t, int M,
               int N, int K, int gs, int bits) {
  const int G = K / gs;
  const int PW = 32 / bits;
  const int VPB = 8 * PW;
  const bool vec = use_avx2() && (K % VPB == 0);
  std::vector<float> x(static_cast<size_t>(M) * K), xsum(static_cast<size_t>(M) * G);
  std::vector<float> xp(vec ? static_cast<size_t>(M) * K : 0);
  to_float(x_in, x.data(), x.size());
  for (int m = 0; m < M; ++m) {
    const float* xr = x.data() + static_cast<size_t>(m) * K;
    for (int g = 0; g < G; ++g) {
      float acc = 0.f;
      for (int k = g * gs; k < (g + 1) * gs; ++k) acc += xr[k];
      xsum[static_cast<size_t>(m) * G + g] = acc;
    }
    if (vec) {
      float* xpr = xp.data() + static_cast<size_t>(m) * K;
      for (int b0 = 0; b0 < K; b0 += VPB)
        for (int i = 0; i < 8; ++i)
          for (int j = 0; j < PW; ++j) xpr[b0 + j * 8 + i] = xr[b0 + i * PW + j];
    }
  }
  std::vector<float> s(static_cast<size_t>(N) * G), b(static_cast<size_t>(N) * G);
  to_float(s_in, s.data(), s.size());
  to_float(b_in, b.data(), b.size());
  const bool direct = std::is_same<XT, float>::value;
  std::vector<float> outf(direct ? 0 : static_cast<size_t>(M) * N);
  float* out = direct ? reinterpret_cast<float*>(out_t) : outf.data();
  Problem p{M, N, K, G, gs, bits, x.data(), vec ? xp.data() : nullptr, xsum.data(), w, s.data(), b.data(), out};

  Pool& pl = pool();
  const int nt = (static_cast<long>(M) * N * K < (1l << 16)) ? 1 : pl.size();
  auto part = [&](int t) {
    // Split the columns in multiples of 8 so chunks do not share cache lines of `out`.
    int per = ((N + nt - 1) / nt + 7) / 8 * 8;
    int n0 = std::min(N, t * per), n1 = std::min(N, (t + 1) * per);
    if (n0 >= n1) return;
    if (!vec) scalar_range(p, n0, n1);
    else if (bits == 4) avx2_range<4>(p, n0, n1);
    else avx2_range<8>(p, n0, n1);
  };
  if (nt == 1) part(0);
  else pl.run(part);
  if (!direct)
    for (size_t i = 0; i < outf.size(); ++i) out_t[i] = static_cast<XT>(outf[i]);
}

template <typename XT>
void run_x(const mx::array& x, const mx::array& w, const mx::array& s, const mx::array& b, mx::array& out,
           int M, int N, int K, int gs, int bits) {
  auto& enc = mx::cpu::get_command_encoder(out.primitive().stream());
  enc.set_input_array(x);
  enc.set_input_array(w);
  enc.set_input_array(s);
  enc.set_input_array(b);
  enc.set_output_array(out);
  const XT* xp = x.data<XT>();
  const uint32_t* wp = w.data<uint32_t>();
  XT* op = out.data<XT>();
  auto sd = s.dtype();
  if (sd == mx::float32) {
    enc.dispatch([=, sp = s.data<float>(), bp = b.data<float>()] { run_typed(xp, wp, sp, bp, op, M, N, K, gs, bits); });
  } else if (sd == mx::float16) {
    enc.dispatch([=, sp = s.data<mx::float16_t>(), bp = b.data<mx::float16_t>()] {
      run_typed(xp, wp, sp, bp, op, M, N, K, gs, bits);
    });
  } else {
    enc.dispatch([=, sp = s.data<mx::bfloat16_t>(), bp = b.data<mx::bfloat16_t>()] {
      run_typed(xp, wp, sp, bp, op, M, N, K, gs, bits);
    });
  }
}

bool float_dtype(mx::Dtype d) { return d == mx::float32 || d == mx::float16 || d == mx::bfloat16; }

}  // namespace

const char* isa() { return use_avx2() ? "avx2" : "scalar"; }
int threads() { return pool().size(); }

mx::array quantized_matmul(const mx::array& x_in, const mx::array& w_in, const mx::array& scales_in,
                           const mx::array& biases_in, int group_size, int bits) {
  auto fail = [](const std::string& m) { throw std::invalid_argument("[native.quantized_matmul] " + m); };
  if (bits != 4 && bits != 8) fail("bits must be 4 or 8");
  if (group_size != 32 && group_size != 64 && group_size != 128) fail("group_size must be 32, 64 or 128");
  if (w_in.dtype() != mx::uint32 || w_in.ndim() != 2) fail("w must be a 2-D uint32 array");
  if (!float_dtype(x_in.dtype()) || x_in.ndim() < 1) fail("x must be fp32, fp16 or bf16");
  if (!float_dtype(scales_in.dtype()) || scales_in.dtype() != biases_in.dtype())
    fail("scales and biases must share one float dtype");
  const int N = w_in.shape(0);
  const int K = w_in.shape(1) * (32 / bits);
  if (x_in.shape(-1) != K) {
    std::ostringstream os;
    os << "x has " << x_in.shape(-1) << " features, w holds " << K;
    fail(os.str());
  }
  if (K % group_size != 0) fail("K must be a multiple of group_size");
  const int G = K / group_size;
  if (scales_in.ndim() != 2 || scales_in.shape(0) != N || scales_in.shape(1) != G ||
      biases_in.shape() != scales_in.shape())
    fail("scales/biases must be [N, K/group_size]");
  auto s = mx::default_stream(mx::Device::cpu);
  // Output dtype follows mx.quantized_matmul: the promotion of x's and the scales' dtypes.
  auto x = mx::contiguous(mx::astype(x_in, mx::promote_types(x_in.dtype(), scales_in.dtype()), s), false, s);
  auto w = mx::contiguous(w_in, false, s);
  auto sc = mx::contiguous(scales_in, false, s);
  auto bi = mx::contiguous(biases_in, false, s);
  mx::Shape out_shape = x.shape();
  out_shape.back() = N;
  return mx::array(out_shape, x.dtype(), std::make_shared<NativeQuantizedMatmul>(s, group_size, bits),
                   {x, w, sc, bi});
}

void NativeQuantizedMatmul::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  const auto& x = inputs[0];
  const auto& w = inputs[1];
  const auto& s = inputs[2];
  const auto& b = inputs[3];
  auto& out = outputs[0];
  for (const auto* a : {&x, &w, &s, &b})
    if (!a->flags().row_contiguous) throw std::runtime_error("[NativeQuantizedMatmul] input not row-contiguous");
  out.set_data(mx::allocator::malloc(out.nbytes()));
  const int K = x.shape(-1);
  const int N = w.shape(0);
  const int M = static_cast<int>(x.size() / std::max<size_t>(1, K));
  if (M == 0) return;
  if (x.dtype() == mx::float32) run_x<float>(x, w, s, b, out, M, N, K, group_size_, bits_);
  else if (x.dtype() == mx::float16) run_x<mx::float16_t>(x, w, s, b, out, M, N, K, group_size_, bits_);
  else run_x<mx::bfloat16_t>(x, w, s, b, out, M, N, K, group_size_, bits_);
}

void NativeQuantizedMatmul::eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) {
  throw std::runtime_error("[NativeQuantizedMatmul] CPU only");
}

bool NativeQuantizedMatmul::is_equivalent(const mx::Primitive& other) const {
  const auto& o = static_cast<const NativeQuantizedMatmul&>(other);
  return group_size_ == o.group_size_ && bits_ == o.bits_;
}

}  // namespace runtime_native
