// CPU kernels for x @ w.T with unquantized bf16/fp16 weights w [N, K] (MLX's nn.Linear layout).
//
// Decode (M = 1) streams each weight once: the kernel is bound by memory bandwidth, so the weights are
// read in their own 16-bit type and widened in registers, never copied. x is converted to fp32 once
// per call (per-thread scratch) and accumulation is fp32, one rounding at the end.
//
// bf16 -> fp32 is a 16-bit shift. One 512-bit load holds 32 bf16 values, two per 32-bit lane: `lane
// << 16` is the even value and `lane & 0xFFFF0000` the odd one, so x's blocks of 32 are stored
// even-then-odd (16 + 16) once per call and the inner loop is load, shift, and, FMA. fp16 is widened
// by vcvtph2ps (F16C) 16 at a time, x in natural order. AVX2 does the same with 16-value blocks.
//
// A tile is MR rows x NR columns of the output: NR weight columns are widened once per block and used
// by MR rows (prefill reuses each weight block across 4 rows), and NR columns share each x load
// (decode: 4 columns per pass, 8 independent accumulator chains). Values past the last whole block
// (K not a multiple of 32/16) are added by a scalar tail. Output columns are split in chunks across
// the pool.

#include "mm.h"

#include "common.h"

namespace runtime_native {

namespace {

using namespace detail;

// 2: AVX-512 (F + BW, with F16C), 1: AVX2 + FMA + F16C, 0: scalar. RUNTIME_NATIVE_ISA=avx2|scalar caps
// it as for the quantized kernel; AVX-512 VNNI is not needed here. (AVX-512 BF16 dot products,
// vdpbf16ps, were tried for bf16 x bf16: prefill ran at half the FMA path's rate on this Xeon.)
int dense_level() {
  static const int v = [] {
#if RN_X86
    if (isa_level() == 0) return 0;  // scalar asked for, or no AVX2 + FMA
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("f16c")) return 0;
    const char* e = std::getenv("RUNTIME_NATIVE_ISA");
    if (e && std::strcmp(e, "avx2") == 0) return 1;
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") ? 2 : 1;
#else
    return 0;
#endif
  }();
  return v;
}

// Values per vector block at each level (0: no vector block).
int block_of(int level) { return level == 2 ? 32 : level == 1 ? 16 : 0; }

struct DProblem {
  int M, N, K, KB;   // KB: K rounded down to whole vector blocks
  const float* x;    // [M, K] fp32: blocks [0, KB) in the kernel's order, the tail in natural order
  const void* w;     // [N, K] bf16 or fp16
  float* out;        // [M, N] fp32
};

template <typename WT>
inline float tail_dot(const float* xr, const WT* wr, int k0, int k1) {
  float s = 0.f;
  for (int k = k0; k < k1; ++k) s += xr[k] * to_f(wr[k]);
  return s;
}

// ---------------------------------------------------------------- scalar kernel
template <typename WT>
void scalar_range(const DProblem& p, int n0, int n1) {
  const WT* w = static_cast<const WT*>(p.w);
  const float* x = p.x;
  for (int n = n0; n < n1; ++n)
    for (int m = 0; m < p.M; ++m)
      p.out[static_cast<size_t>(m) * p.N + n] =
          tail_dot(x + static_cast<size_t>(m) * p.K, w + static_cast<size_t>(n) * p.K, 0, p.K);
}

#if RN_X86
#define RN_AVX512F __attribute__((target("avx512f,avx512bw,fma,f16c")))
#define RN_AVX2F __attribute__((target("avx2,fma,f16c")))
// Decode prefetches each weight stream 8 KB ahead: measured 10 -> 12.7 GB/s on one core of this
// 2-core Xeon host (the hardware prefetcher alone keeps too few lines in flight). The address is
// computed as an integer: past the last row it points beyond the array (prefetches never fault).
inline void prefetch_ahead(const void* p) {
  _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(p) + 8192), _MM_HINT_T0);
}

// The 32 weights at wr as fp32: values of the first and second half of x's block order.
template <typename WT>
RN_AVX512F inline void widen32(const WT* wr, __m512& a, __m512& b) {
  if constexpr (std::is_same<WT, mx::bfloat16_t>::value) {
    const __m512i v = _mm512_loadu_si512(wr);
    a = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
    b = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(static_cast<int>(0xFFFF0000u))));
  } else {
    a = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr)));
    b = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + 16)));
  }
}

template <int MR, int NR, typename WT>
RN_AVX512F void tile512(const DProblem& p, int m0, int n0) {
  constexpr int A = MR == 1 ? 2 : 1;  // one row: even/odd halves in separate chains (FMA latency)
  const WT* w = static_cast<const WT*>(p.w);
  const WT* wr[NR];
  const float* xr[MR];
  __m512 acc[A][MR][NR];
  for (int j = 0; j < NR; ++j) wr[j] = w + static_cast<size_t>(n0 + j) * p.K;
  for (int r = 0; r < MR; ++r) {
    xr[r] = p.x + static_cast<size_t>(m0 + r) * p.K;
    for (int j = 0; j < NR; ++j)
      for (int a = 0; a < A; ++a) acc[a][r][j] = _mm512_setzero_ps();
  }
  for (int k = 0; k < p.KB; k += 32) {
    __m512 xa[MR], xb[MR];
    for (int r = 0; r < MR; ++r) {
      xa[r] = _mm512_loadu_ps(xr[r] + k);
      xb[r] = _mm512_loadu_ps(xr[r] + k + 16);
    }
    for (int j = 0; j < NR; ++j) {
      if constexpr (MR == 1) prefetch_ahead(wr[j] + k);
      __m512 wa, wb;
      widen32(wr[j] + k, wa, wb);
      for (int r = 0; r < MR; ++r) {
        acc[0][r][j] = _mm512_fmadd_ps(wa, xa[r], acc[0][r][j]);
        acc[A - 1][r][j] = _mm512_fmadd_ps(wb, xb[r], acc[A - 1][r][j]);
      }
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NR; ++j) {
      __m512 s = acc[0][r][j];
      if constexpr (A == 2) s = _mm512_add_ps(s, acc[1][r][j]);
      p.out[static_cast<size_t>(m0 + r) * p.N + n0 + j] =
          _mm512_reduce_add_ps(s) + tail_dot(xr[r], wr[j], p.KB, p.K);
    }
}

template <typename WT>
RN_AVX2F inline void widen16(const WT* wr, __m256& a, __m256& b) {
  if constexpr (std::is_same<WT, mx::bfloat16_t>::value) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr));
    a = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    b = _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32(static_cast<int>(0xFFFF0000u))));
  } else {
    a = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wr)));
    b = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wr + 8)));
  }
}

// AVX2 has 16 vector registers: at most 2 rows x 4 columns per tile.
template <int MR, int NR, typename WT>
RN_AVX2F void tile256(const DProblem& p, int m0, int n0) {
  constexpr int A = MR == 1 ? 2 : 1;
  const WT* w = static_cast<const WT*>(p.w);
  const WT* wr[NR];
  const float* xr[MR];
  __m256 acc[A][MR][NR];
  for (int j = 0; j < NR; ++j) wr[j] = w + static_cast<size_t>(n0 + j) * p.K;
  for (int r = 0; r < MR; ++r) {
    xr[r] = p.x + static_cast<size_t>(m0 + r) * p.K;
    for (int j = 0; j < NR; ++j)
      for (int a = 0; a < A; ++a) acc[a][r][j] = _mm256_setzero_ps();
  }
  for (int k = 0; k < p.KB; k += 16) {
    __m256 xa[MR], xb[MR];
    for (int r = 0; r < MR; ++r) {
      xa[r] = _mm256_loadu_ps(xr[r] + k);
      xb[r] = _mm256_loadu_ps(xr[r] + k + 8);
    }
    for (int j = 0; j < NR; ++j) {
      if constexpr (MR == 1) prefetch_ahead(wr[j] + k);
      __m256 wa, wb;
      widen16(wr[j] + k, wa, wb);
      for (int r = 0; r < MR; ++r) {
        acc[0][r][j] = _mm256_fmadd_ps(wa, xa[r], acc[0][r][j]);
        acc[A - 1][r][j] = _mm256_fmadd_ps(wb, xb[r], acc[A - 1][r][j]);
      }
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NR; ++j) {
      __m256 s = acc[0][r][j];
      if constexpr (A == 2) s = _mm256_add_ps(s, acc[1][r][j]);
      p.out[static_cast<size_t>(m0 + r) * p.N + n0 + j] = hsum8(s) + tail_dot(xr[r], wr[j], p.KB, p.K);
    }
}

// Tiles of MR rows at row m over the columns [c0, c1): 4 columns at a time, then single ones.
template <int L, int MR, typename WT>
void row_tiles(const DProblem& p, int m, int c0, int c1) {
  int n = c0;
  for (; n + 4 <= c1; n += 4) {
    if constexpr (L == 2) tile512<MR, 4, WT>(p, m, n);
    else tile256<MR, 4, WT>(p, m, n);
  }
  for (; n < c1; ++n) {
    if constexpr (L == 2) tile512<MR, 1, WT>(p, m, n);
    else tile256<MR, 1, WT>(p, m, n);
  }
}

// Rows in blocks of 64 (their fp32 x stays in L2 across the column chunks) and columns in chunks
// of 64 (their weights stay in L2 across the row tiles of the block).
template <int L, typename WT>
void vector_range(const DProblem& p, int n0, int n1) {
  constexpr int MRMAX = L == 2 ? 4 : 2;
  constexpr int MB = 64, NC = 64;
  for (int mb = 0; mb < p.M; mb += MB) {
    const int me = std::min(p.M, mb + MB);
    for (int c0 = n0; c0 < n1; c0 += NC) {
      const int c1 = std::min(n1, c0 + NC);
      int m = mb;
      for (; m + MRMAX <= me; m += MRMAX) row_tiles<L, MRMAX, WT>(p, m, c0, c1);
      const int rest = me - m;  // fewer than MRMAX rows left
      if constexpr (MRMAX == 4) {
        if (rest == 3) row_tiles<L, 3, WT>(p, m, c0, c1);
        else if (rest == 2) row_tiles<L, 2, WT>(p, m, c0, c1);
        else if (rest == 1) row_tiles<L, 1, WT>(p, m, c0, c1);
      } else if (rest == 1) {
        row_tiles<L, 1, WT>(p, m, c0, c1);
      }
    }
  }
}
#endif  // RN_X86

// fp32 copy of rows [m0, m1) of x; with bf16 weights, each whole block stored even-then-odd.
template <typename XT>
void prep_rows(const XT* x, float* xf, int m0, int m1, int K, int KB, int B, bool deinterleave) {
  for (int m = m0; m < m1; ++m) {
    const XT* xr = x + static_cast<size_t>(m) * K;
    float* fr = xf + static_cast<size_t>(m) * K;
    int k = 0;
    if (deinterleave)
      for (; k < KB; k += B)
        for (int i = 0; i < B / 2; ++i) {
          fr[k + i] = to_f(xr[k + 2 * i]);
          fr[k + B / 2 + i] = to_f(xr[k + 2 * i + 1]);
        }
    for (; k < K; ++k) fr[k] = to_f(xr[k]);
  }
}

template <typename WT>
void compute_range(const DProblem& p, int level, int n0, int n1) {
#if RN_X86
  if (level == 2) return vector_range<2, WT>(p, n0, n1);
  if (level == 1) return vector_range<1, WT>(p, n0, n1);
#else
  (void)level;
#endif
  scalar_range<WT>(p, n0, n1);
}

template <typename XT, typename WT>
void run_dense(const XT* x_in, const WT* w, XT* out_t, int M, int N, int K) {
  const int level = dense_level();
  const int B = block_of(level);
  const int KB = B ? K / B * B : 0;
  Pool& pl = pool();
  const int nt = (static_cast<long>(M) * N * K < (1l << 16)) ? 1 : pl.size();
  thread_local std::vector<float> xb, ob;
  float* xf = scratch(xb, static_cast<size_t>(M) * K);
  const bool deinterleave = std::is_same<WT, mx::bfloat16_t>::value && B > 0;
  if (nt > 1 && M >= 8) {
    pl.run([&](int t) {
      const int per = (M + nt - 1) / nt;
      prep_rows(x_in, xf, std::min(M, t * per), std::min(M, (t + 1) * per), K, KB, B, deinterleave);
    });
  } else {
    prep_rows(x_in, xf, 0, M, K, KB, B, deinterleave);
  }
  constexpr bool direct = std::is_same<XT, float>::value;
  float* out = direct ? reinterpret_cast<float*>(out_t) : scratch(ob, static_cast<size_t>(M) * N);
  const DProblem p{M, N, K, KB, xf, w, out};
  // About 4 column chunks per thread, taken dynamically (a thread slowed by another job does less),
  // in multiples of 16 columns so that chunks do not share cache lines of `out`.
  const int per = ((N + 4 * nt - 1) / (4 * nt) + 15) / 16 * 16;
  const int chunks = (N + per - 1) / per;
  auto part = [&](int c) {
    const int n0 = c * per, n1 = std::min(N, (c + 1) * per);
    compute_range<WT>(p, level, n0, n1);
    if constexpr (!direct)  // each chunk rounds its own columns
      for (int m = 0; m < M; ++m)
        for (int n = n0; n < n1; ++n)
          out_t[static_cast<size_t>(m) * N + n] = static_cast<XT>(out[static_cast<size_t>(m) * N + n]);
  };
  if (nt == 1) {
    for (int c = 0; c < chunks; ++c) part(c);
  } else {
    pl.run_chunks(chunks, part);
  }
}

template <typename XT>
void dispatch_x(const mx::array& x, const mx::array& w, mx::array& out, int M, int N, int K) {
  auto& enc = mx::cpu::get_command_encoder(out.primitive().stream());
  enc.set_input_array(x);
  enc.set_input_array(w);
  enc.set_output_array(out);
  const XT* xp = x.data<XT>();
  XT* op = out.data<XT>();
  const Strided view = strided_view(x);
  auto run = [=](const auto* wp) {
    thread_local std::vector<XT> xb;
    run_dense(row_major(xp, view, xb), wp, op, M, N, K);
  };
  if (w.dtype() == mx::bfloat16) {
    enc.dispatch([=, wp = w.data<mx::bfloat16_t>()] { run(wp); });
  } else {
    enc.dispatch([=, wp = w.data<mx::float16_t>()] { run(wp); });
  }
}

bool float_dtype(mx::Dtype d) { return d == mx::float32 || d == mx::float16 || d == mx::bfloat16; }

}  // namespace

const char* dense_isa() {
  static const char* names[] = {"scalar", "avx2", "avx512"};
  return names[dense_level()];
}

mx::array matmul(const mx::array& x_in, const mx::array& w_in) {
  auto fail = [](const std::string& m) { throw std::invalid_argument("[native.matmul] " + m); };
  if (w_in.ndim() != 2 || (w_in.dtype() != mx::bfloat16 && w_in.dtype() != mx::float16))
    fail("w must be a 2-D bf16 or fp16 array (fp32 weights: use MLX's matmul)");
  if (!float_dtype(x_in.dtype()) || x_in.ndim() < 1) fail("x must be fp32, fp16 or bf16 with at least one dim");
  const int N = w_in.shape(0);
  const int K = w_in.shape(1);
  if (x_in.shape(-1) != K) {
    std::ostringstream os;
    os << "x has " << x_in.shape(-1) << " features, w holds " << K;
    fail(os.str());
  }
  auto s = mx::default_stream(mx::Device::cpu);
  // Output dtype as in MLX: the promotion of x's and w's dtypes. x is cast to it (losslessly: among
  // fp32/fp16/bf16 the promotion always holds x exactly), so x's type is the output's type.
  const mx::Dtype odt = mx::promote_types(x_in.dtype(), w_in.dtype());
  auto x = mx::astype(x_in, odt, s);
  auto w = as_row_contiguous(w_in, s);
  mx::Shape out_shape = x.shape();
  out_shape.back() = N;
  return mx::array(out_shape, odt, std::make_shared<NativeMatmul>(s), {x, w});
}

void NativeMatmul::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  const auto& x = inputs[0];
  const auto& w = inputs[1];
  auto& out = outputs[0];
  if (!w.flags().row_contiguous)  // x may be any view: dispatch_x reads it
    throw std::runtime_error("[NativeMatmul] input not row-contiguous");
  out.set_data(mx::allocator::malloc(out.nbytes()));
  const int K = x.shape(-1);
  const int N = w.shape(0);
  if (out.size() == 0) return;
  if (K == 0) {  // an empty sum: zeros, as MLX gives
    auto& enc = mx::cpu::get_command_encoder(stream());
    enc.set_output_array(out);
    enc.dispatch([p = out.data<void>(), n = out.nbytes()] { std::memset(p, 0, n); });
    return;
  }
  const int M = static_cast<int>(x.size() / K);
  with_float_type(x.dtype(), [&](auto tag) { dispatch_x<decltype(tag)>(x, w, out, M, N, K); });
}

void NativeMatmul::eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) {
  throw std::runtime_error("[NativeMatmul] CPU only");
}

}  // namespace runtime_native
