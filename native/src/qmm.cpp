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

#include "common.h"

namespace runtime_native {

namespace {

using namespace detail;

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

// Columns [n0, n1) in chunks of NC whose weights stay in cache across the row tiles; rows in tiles
// of 4, then one tile of the rest: tile(n, m, std::integral_constant<int, MT>{}).
template <typename Tile>
inline void column_tiles(int M, int n0, int n1, int NC, const Tile& tile) {
  for (int c0 = n0; c0 < n1; c0 += NC) {
    const int c1 = std::min(n1, c0 + NC);
    int m = 0;
    for (; m + 4 <= M; m += 4)
      for (int n = c0; n < c1; ++n) tile(n, m, std::integral_constant<int, 4>{});
    const int rest = M - m;
    for (int n = c0; n < c1; ++n) {
      if (rest == 3) tile(n, m, std::integral_constant<int, 3>{});
      else if (rest == 2) tile(n, m, std::integral_constant<int, 2>{});
      else if (rest == 1) tile(n, m, std::integral_constant<int, 1>{});
    }
  }
}

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

#if RN_X86
// ---------------------------------------------------------------- AVX2 + FMA kernel
// MT rows of x against column n.
template <int BITS, int MT>
__attribute__((target("avx2,fma"))) void avx2_column(const Problem& p, int n, int m0) {
  constexpr int PW = 32 / BITS;       // values per word
  constexpr int VPB = 8 * PW;         // values per block of 8 words
  const __m256i mask = _mm256_set1_epi32((1 << BITS) - 1);
  const int nblocks = p.K / VPB;
  const int wpr = p.K / PW;
  const uint32_t* wr = p.w + static_cast<size_t>(n) * wpr;
  const int gshift = log2_of(p.gs);  // a shift: a division per block showed in profiles
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
      sv = _mm256_set1_ps(sr[(blk * VPB) >> gshift]);
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
  column_tiles(p.M, n0, n1, 64, [&](int n, int m, auto mt) { avx2_column<BITS, decltype(mt)::value>(p, n, m); });
}

#endif  // RN_X86

// ---------------------------------------------------------------- AVX-512 VNNI kernel
// x is quantized per group to two int8 terms, x ~= d * (h + l/256) with d = max|x_g|/127, so the
// error per element is at most max|x_g|/65024 (about 16 bits relative to the group's largest value;
// fp32 output stays within the 1e-4 tolerance). The 4-bit nibbles (0..15) and 8-bit bytes are the
// unsigned operand of vpdpbusd; per 16-word block, lane i accumulates the values of word i only, so
// each lane belongs to one group: tot += float(256*dot(q,h) + dot(q,l)) * s_g * d_g / 256.
// The bias term is factored: sum_g b_g * sum(x_g), with the group sums of x in fp32.
#if RN_X86
struct VProblem {
  int M, N, K, G, gs;
  const int8_t* h;     // [M, K] int8, high term, block-permuted for 4 bits
  const int8_t* l;     // [M, K] int8, low term
  const float* dx;     // [M, G] d / 256
  const float* xsum;   // [M, G] fp32 group sums of x
  const float* ecorr;  // [M, G] centre * sum(x - quantized x)
  const uint32_t* w;   // [N, K*bits/32]
  const void* s;       // [N, G] scales, ST
  const void* b;       // [N, G] biases, ST
  void* out;           // [M, N] OT
};

#define RN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c")))

template <typename ST>
RN_AVX512 inline __m512 load16(const ST* p, __mmask16 m) {
  if constexpr (std::is_same<ST, float>::value) {
    return _mm512_maskz_loadu_ps(m, p);
  } else if constexpr (std::is_same<ST, mx::float16_t>::value) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
  } else {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
  }
}

template <int BITS, int MT, typename ST, typename OT>
RN_AVX512 void vnni_tile(const VProblem& p, int n, int m0, float* cbuf) {
  constexpr int PW = 32 / BITS;
  constexpr int VPB = 16 * PW;  // values per 16-word block
  const int G = p.G, K = p.K, gs = p.gs;
  const int nb = K / VPB;
  const int wpr = K / PW;
  const int cstride = G + 16;
  const ST* sr = static_cast<const ST*>(p.s) + static_cast<size_t>(n) * G;
  const ST* br = static_cast<const ST*>(p.b) + static_cast<size_t>(n) * G;
  __m512 tot[MT];
  for (int r = 0; r < MT; ++r) tot[r] = _mm512_setzero_ps();
  for (int g0 = 0; g0 < G; g0 += 16) {
    const __mmask16 mk = static_cast<__mmask16>(G - g0 >= 16 ? 0xFFFF : ((1u << (G - g0)) - 1u));
    const __m512 sv = load16(sr + g0, mk);
    const __m512 bv = load16(br + g0, mk);
    for (int r = 0; r < MT; ++r) {
      const size_t ro = static_cast<size_t>(m0 + r) * G + g0;
      _mm512_storeu_ps(cbuf + r * cstride + g0, _mm512_mul_ps(sv, _mm512_maskz_loadu_ps(mk, p.dx + ro)));
      tot[r] = _mm512_fmadd_ps(bv, _mm512_maskz_loadu_ps(mk, p.xsum + ro), tot[r]);
      tot[r] = _mm512_fmadd_ps(sv, _mm512_maskz_loadu_ps(mk, p.ecorr + ro), tot[r]);
    }
  }
  // lane -> group offset inside the block (all lanes share one group when gs >= VPB)
  alignas(64) int lidx[16];
  for (int i = 0; i < 16; ++i) lidx[i] = gs >= VPB ? 0 : (i * PW) / gs;
  const __m512i idx = _mm512_load_si512(lidx);
  const bool one_group = gs >= VPB;
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const uint32_t* wr = p.w + static_cast<size_t>(n) * wpr;
  const int gshift = log2_of(gs);  // a shift: a division per block showed in profiles
  for (int blk = 0; blk < nb; ++blk) {
    const __m512i wv = _mm512_loadu_si512(wr + blk * 16);
    __m512i lo, hi;
    if constexpr (BITS == 4) {
      lo = _mm512_and_si512(wv, m4);
      hi = _mm512_and_si512(_mm512_srli_epi16(wv, 4), m4);
    } else {
      lo = wv;
      hi = wv;
    }
    const int g0 = (blk * VPB) >> gshift;
    for (int r = 0; r < MT; ++r) {
      const size_t xo = static_cast<size_t>(m0 + r) * K + static_cast<size_t>(blk) * VPB;
      __m512i acc;
      if constexpr (BITS == 4) {
        acc = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_loadu_si512(p.h + xo));
        acc = _mm512_dpbusd_epi32(acc, hi, _mm512_loadu_si512(p.h + xo + 64));
        acc = _mm512_slli_epi32(acc, 8);
        acc = _mm512_dpbusd_epi32(acc, lo, _mm512_loadu_si512(p.l + xo));
        acc = _mm512_dpbusd_epi32(acc, hi, _mm512_loadu_si512(p.l + xo + 64));
      } else {
        acc = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_loadu_si512(p.h + xo));
        acc = _mm512_slli_epi32(acc, 8);
        acc = _mm512_dpbusd_epi32(acc, hi, _mm512_loadu_si512(p.l + xo));
      }
      const float* cr = cbuf + r * cstride + g0;
      const __m512 cv = one_group ? _mm512_set1_ps(*cr) : _mm512_permutexvar_ps(idx, _mm512_loadu_ps(cr));
      tot[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), cv, tot[r]);
    }
  }
  OT* out = static_cast<OT*>(p.out);
  for (int r = 0; r < MT; ++r)
    out[static_cast<size_t>(m0 + r) * p.N + n] = static_cast<OT>(_mm512_reduce_add_ps(tot[r]));
}

template <int BITS, typename ST, typename OT>
void vnni_range(const VProblem& p, int n0, int n1) {
  thread_local std::vector<float> cb;
  float* cbuf = scratch(cb, static_cast<size_t>(4) * (p.G + 16));
  column_tiles(p.M, n0, n1, 32, [&](int n, int m, auto mt) { vnni_tile<BITS, decltype(mt)::value, ST, OT>(p, n, m, cbuf); });
}

// Quantizes rows [m0, m1) of x: group sums, steps, and the two int8 terms in the kernel's order.
template <typename XT>
void vnni_prep(const XT* x_in, int m0, int m1, int K, int gs, int bits, int8_t* h, int8_t* l, float* dx,
               float* xsum, float* ecorr) {
  const int G = K / gs;
  float xf[128];
  for (int m = m0; m < m1; ++m) {
    const XT* xr = x_in + static_cast<size_t>(m) * K;
    int8_t* hr = h + static_cast<size_t>(m) * K;
    int8_t* lr = l + static_cast<size_t>(m) * K;
    for (int g = 0; g < G; ++g) {
      float amax = 0.f, sum = 0.f;
      for (int k = 0; k < gs; ++k) {
        xf[k] = to_f(xr[g * gs + k]);
        sum += xf[k];
        amax = std::max(amax, std::fabs(xf[k]));
      }
      xsum[static_cast<size_t>(m) * G + g] = sum;
      const float d = amax / 127.f;
      float qsum = 0.f;  // sum of the quantized x, in units of d/256
      const float inv = amax > 0.f ? 127.f / amax : 0.f;
      dx[static_cast<size_t>(m) * G + g] = d / 256.f;
      for (int k = 0; k < gs; ++k) {
        const int kk = g * gs + k;
        const float v = xf[k] * inv;
        float hv = std::nearbyint(v);
        hv = std::min(127.f, std::max(-127.f, hv));
        float lv = std::nearbyint((v - hv) * 256.f);
        lv = std::min(127.f, std::max(-127.f, lv));
        int pos = kk;
        if (bits == 4) {  // block of 128: value 8i+2t -> byte 4i+t, value 8i+2t+1 -> byte 64+4i+t
          const int b0 = kk & ~127, o = kk & 127, i = o >> 3, j = o & 7;
          pos = b0 + (j & 1) * 64 + 4 * i + (j >> 1);
        }
        qsum += hv * 256.f + lv;
        hr[pos] = static_cast<int8_t>(hv);
        lr[pos] = static_cast<int8_t>(lv);
      }
      // The kernel's error is s * sum(q_k * e_k), e = x - quantized x; with the exact sum(e) known,
      // s * centre * sum(e) is added back so that the error left is s * sum((q_k - centre) * e_k).
      const float centre = bits == 4 ? 7.5f : 127.5f;
      ecorr[static_cast<size_t>(m) * G + g] = centre * (sum - qsum * (d / 256.f));
    }
  }
}

// ---------------------------------------------------------------- AVX2 int16 kernel
// For CPUs with AVX2 but without AVX-512 VNNI (AMD Zen 2/3, older Intel). x is quantized per group to
// int16, x ~= d * xi with d = max|x_g|/32767 (error at most max|x_g|/65534 per element, the VNNI
// path's precision); vpmaddwd multiplies 16 weights by 16 xi and adds pairs into int32, so a
// 32-byte load of weights costs 4 (4 bits) or 2 (8 bits) multiply-adds per row instead of the
// float path's 8 converts and 8 FMAs. The weights are taken as 16 uint16 lanes: lane l of a 4-bit
// block holds values 4l..4l+3, and (lane >> 4j) & 15 is value 4l+j (8 bits: 2l+j, (lane >> 8j) &
// 255), so x is stored in that order once per call and no weight is ever widened or shuffled.
// The bias term and the centre correction are factored as in the VNNI kernel.
struct IProblem {
  int M, N, K, G, Gp, gs;  // Gp: the per-row stride of dx/xsum/ecorr, G rounded up to 8 (zero padded)
  const void* xq;          // [M, K] int16 or int8 (QT), in the kernel's order
  const float* dx;         // [M, Gp] d
  const float* xsum;       // [M, Gp] fp32 group sums of x
  const float* ecorr;      // [M, Gp] centre * sum(x - quantized x)
  const uint32_t* w;       // [N, K*bits/32]
  const void* s;           // [N, G] scales, ST
  const void* b;           // [N, G] biases, ST
  void* out;               // [M, N] OT
};

#define RN_AVX2I RN_AVX2_F16C

// Eight values from p, zeros past n (the last scales of a row whose group count is not a multiple of 8).
template <typename ST>
RN_AVX2I inline __m256 load8_upto(const ST* p, int n) {
  if (n >= 8) return widen8(p);
  ST tmp[8];
  std::memset(static_cast<void*>(tmp), 0, sizeof(tmp));
  std::memcpy(static_cast<void*>(tmp), p, sizeof(ST) * n);
  return widen8(tmp);
}

// The per-column part of the int kernels: s_g * d_g for each row and group into cbuf (the factor a
// block's integer dot is scaled by), and the bias term plus the centre correction into tot.
template <int MT, typename ST>
RN_AVX2I inline void group_terms(const IProblem& p, int n, int m0, float* cbuf, __m256* tot) {
  const int G = p.G, Gp = p.Gp;
  const ST* sr = static_cast<const ST*>(p.s) + static_cast<size_t>(n) * G;
  const ST* br = static_cast<const ST*>(p.b) + static_cast<size_t>(n) * G;
  for (int r = 0; r < MT; ++r) tot[r] = _mm256_setzero_ps();
  for (int g0 = 0; g0 < G; g0 += 8) {
    const __m256 sv = load8_upto(sr + g0, G - g0);
    const __m256 bv = load8_upto(br + g0, G - g0);
    for (int r = 0; r < MT; ++r) {
      const size_t ro = static_cast<size_t>(m0 + r) * Gp + g0;
      _mm256_storeu_ps(cbuf + r * Gp + g0, _mm256_mul_ps(sv, _mm256_loadu_ps(p.dx + ro)));
      tot[r] = _mm256_fmadd_ps(bv, _mm256_loadu_ps(p.xsum + ro), tot[r]);
      tot[r] = _mm256_fmadd_ps(sv, _mm256_loadu_ps(p.ecorr + ro), tot[r]);
    }
  }
}

template <int BITS, int MT, typename ST, typename OT>
RN_AVX2I void i16_tile(const IProblem& p, int n, int m0, float* cbuf) {
  constexpr int PW = 32 / BITS;
  constexpr int VPB = 8 * PW;   // values per 8-word block
  constexpr int NQ = VPB / 16;  // 16-lane weight vectors per block
  const int Gp = p.Gp, K = p.K, gs = p.gs;
  const int nb = K / VPB;
  __m256 tot[MT];
  group_terms<MT, ST>(p, n, m0, cbuf, tot);
  const bool split = gs < VPB;  // 4 bits, group 32: int32 lanes 0-3 are one group, 4-7 the next
  const __m256i mask = _mm256_set1_epi16((1 << BITS) - 1);
  const uint32_t* wr = p.w + static_cast<size_t>(n) * (K / PW);
  const int gshift = log2_of(gs);  // a shift: a division per block showed in profiles
  for (int blk = 0; blk < nb; ++blk) {
    const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + blk * 8));
    __m256i q[NQ];
    q[0] = _mm256_and_si256(wv, mask);
    if constexpr (BITS == 4) {
      q[1] = _mm256_and_si256(_mm256_srli_epi16(wv, 4), mask);
      q[2] = _mm256_and_si256(_mm256_srli_epi16(wv, 8), mask);
      q[3] = _mm256_srli_epi16(wv, 12);
    } else {
      q[1] = _mm256_srli_epi16(wv, 8);
    }
    const int g = (blk * VPB) >> gshift;
    for (int r = 0; r < MT; ++r) {
      const int16_t* xb = static_cast<const int16_t*>(p.xq) + static_cast<size_t>(m0 + r) * K + static_cast<size_t>(blk) * VPB;
      __m256i acc = _mm256_madd_epi16(q[0], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb)));
      for (int j = 1; j < NQ; ++j)
        acc = _mm256_add_epi32(
            acc, _mm256_madd_epi16(q[j], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb + 16 * j))));
      const float* cr = cbuf + r * Gp + g;
      const __m256 cv = split ? _mm256_set_m128(_mm_set1_ps(cr[1]), _mm_set1_ps(cr[0])) : _mm256_set1_ps(cr[0]);
      tot[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), cv, tot[r]);
    }
  }
  OT* out = static_cast<OT*>(p.out);
  for (int r = 0; r < MT; ++r) out[static_cast<size_t>(m0 + r) * p.N + n] = static_cast<OT>(hsum8(tot[r]));
}

template <int BITS, typename ST, typename OT>
void i16_range(const IProblem& p, int n0, int n1) {
  thread_local std::vector<float> cb;
  float* cbuf = scratch(cb, static_cast<size_t>(4) * p.Gp);
  column_tiles(p.M, n0, n1, 32, [&](int n, int m, auto mt) { i16_tile<BITS, decltype(mt)::value, ST, OT>(p, n, m, cbuf); });
}

// Quantizes rows [m0, m1) of x per group to QT (int16 or int8, |q| <= qmax) in the kernel's order,
// with the group steps, sums and centre corrections (rows padded to Gp groups with zeros). A block of
// vpb values is stored as `per` vectors of `lanes` values, value o of the block at vector o % per,
// lane o / per (int16 4-bit: vpb 64, 16 lanes; int16 8-bit: 32, 16; int8: 64, 32). Eight values at a
// time: the scalar version took ~15 us for one 2816-wide row, as long as a 16-column matmul.
template <typename QT, typename XT>
RN_AVX2I void int_prep(const XT* x_in, int m0, int m1, int K, int gs, int Gp, int vpb, int lanes, float centre,
                       QT* xq, float* dx, float* xsum, float* ecorr) {
  constexpr int qmax = std::is_same<QT, int8_t>::value ? 127 : 32767;
  const int G = K / gs;
  const int per = vpb / lanes;
  const __m256 sign = _mm256_set1_ps(-0.f);
  alignas(32) float xf[128];
  alignas(32) int32_t qi[8];
  for (int m = m0; m < m1; ++m) {
    const XT* xr = x_in + static_cast<size_t>(m) * K;
    QT* qr = xq + static_cast<size_t>(m) * K;
    float* dr = dx + static_cast<size_t>(m) * Gp;
    float* sr = xsum + static_cast<size_t>(m) * Gp;
    float* er = ecorr + static_cast<size_t>(m) * Gp;
    for (int g = 0; g < G; ++g) {
      __m256 vsum = _mm256_setzero_ps(), vmax = _mm256_setzero_ps();
      for (int k = 0; k < gs; k += 8) {
        const __m256 v = widen8(xr + g * gs + k);
        _mm256_store_ps(xf + k, v);
        vsum = _mm256_add_ps(vsum, v);
        vmax = _mm256_max_ps(vmax, _mm256_andnot_ps(sign, v));
      }
      const float sum = hsum8(vsum);
      __m128 mx4 = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
      mx4 = _mm_max_ps(mx4, _mm_movehl_ps(mx4, mx4));
      mx4 = _mm_max_ss(mx4, _mm_movehdup_ps(mx4));
      const float amax = _mm_cvtss_f32(mx4);
      const float d = amax / static_cast<float>(qmax);
      const __m256 inv = _mm256_set1_ps(amax > 0.f ? static_cast<float>(qmax) / amax : 0.f);
      const __m256i lim = _mm256_set1_epi32(qmax), nlim = _mm256_set1_epi32(-qmax);
      __m256i vq = _mm256_setzero_si256();
      for (int k = 0; k < gs; k += 8) {
        // cvtps rounds to nearest even, as nearbyint does
        __m256i r = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_load_ps(xf + k), inv));
        r = _mm256_max_epi32(nlim, _mm256_min_epi32(lim, r));
        vq = _mm256_add_epi32(vq, r);
        _mm256_store_si256(reinterpret_cast<__m256i*>(qi), r);
        for (int t = 0; t < 8; ++t) {
          const int kk = g * gs + k + t, o = kk % vpb;
          qr[kk - o + (o % per) * lanes + o / per] = static_cast<QT>(qi[t]);
        }
      }
      const float qsum = hsum8(_mm256_cvtepi32_ps(vq));
      dr[g] = d;
      sr[g] = sum;
      // As in the VNNI kernel: s * centre * sum(x - quantized x) is added back.
      er[g] = centre * (sum - qsum * d);
    }
    for (int g = G; g < Gp; ++g) dr[g] = sr[g] = er[g] = 0.f;
  }
}

// ---------------------------------------------------------------- AVX2 int8 kernel (4 bits, bf16 x)
// bf16 x holds 8 significant bits: quantizing it per group to one int8 term (d = max|x_g|/127, as
// llama.cpp quantizes activations for its 4-bit formats) adds an error of the input's own size, far
// below the 4-bit weights' step. vpmaddubsw multiplies 32 unsigned nibbles by 32 signed x and adds
// pairs into int16 (at most 2*15*127 per pair, no saturation): a 32-byte block of 64 weights costs 2
// multiply-adds per row instead of the int16 kernel's 4. Byte b of a block holds value 2b (low
// nibble) and 2b+1 (high), so x is stored as the block's even values, then its odd ones.
template <int MT, typename ST, typename OT>
RN_AVX2I void i8_tile(const IProblem& p, int n, int m0, float* cbuf) {
  const int8_t* xq = static_cast<const int8_t*>(p.xq);
  const int Gp = p.Gp, K = p.K, gs = p.gs;
  const int nb = K / 64;
  __m256 tot[MT];
  group_terms<MT, ST>(p, n, m0, cbuf, tot);
  const bool split = gs < 64;  // group 32: int32 lanes 0-3 are one group, 4-7 the next
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i ones = _mm256_set1_epi16(1);
  const uint32_t* wr = p.w + static_cast<size_t>(n) * (K / 8);
  const int gshift = log2_of(gs);  // a shift: a division per block showed in profiles
  for (int blk = 0; blk < nb; ++blk) {
    const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + blk * 8));
    const __m256i lo = _mm256_and_si256(wv, m4);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(wv, 4), m4);
    const int g = (blk * 64) >> gshift;
    for (int r = 0; r < MT; ++r) {
      const int8_t* xb = xq + static_cast<size_t>(m0 + r) * K + static_cast<size_t>(blk) * 64;
      const __m256i e = _mm256_maddubs_epi16(lo, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb)));
      const __m256i o = _mm256_maddubs_epi16(hi, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb + 32)));
      const __m256i acc = _mm256_madd_epi16(_mm256_add_epi16(e, o), ones);
      const float* cr = cbuf + r * Gp + g;
      const __m256 cv = split ? _mm256_set_m128(_mm_set1_ps(cr[1]), _mm_set1_ps(cr[0])) : _mm256_set1_ps(cr[0]);
      tot[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), cv, tot[r]);
    }
  }
  OT* out = static_cast<OT*>(p.out);
  for (int r = 0; r < MT; ++r) out[static_cast<size_t>(m0 + r) * p.N + n] = static_cast<OT>(hsum8(tot[r]));
}

template <typename ST, typename OT>
void i8_range(const IProblem& p, int n0, int n1) {
  thread_local std::vector<float> cb;
  float* cbuf = scratch(cb, static_cast<size_t>(4) * p.Gp);
  column_tiles(p.M, n0, n1, 32, [&](int n, int m, auto mt) { i8_tile<decltype(mt)::value, ST, OT>(p, n, m, cbuf); });
}

// The AVX2 int kernels' driver: x quantized once into QT (split over the pool for a prefill), then
// the columns in chunks; range(p, n0, n1) runs the kernel over columns [n0, n1).
template <typename QT, typename XT, typename Cols, typename Range>
void run_int(const XT* x_in, IProblem p, int vpb, int lanes, float centre, int nt, int nc, const Cols& cols,
             const Range& range) {
  thread_local std::vector<QT> qb;
  thread_local std::vector<float> db, sb, eb;
  const size_t MG = static_cast<size_t>(p.M) * p.Gp;
  QT* xq = scratch(qb, static_cast<size_t>(p.M) * p.K);
  float* dx = scratch(db, MG);
  float* xsum = scratch(sb, MG);
  float* ec = scratch(eb, MG);
  auto prep = [&](int m0, int m1) { int_prep(x_in, m0, m1, p.K, p.gs, p.Gp, vpb, lanes, centre, xq, dx, xsum, ec); };
  Pool& pl = pool();
  if (nt > 1 && p.M >= 8) {
    pl.run([&](int t) {
      const int per = (p.M + nt - 1) / nt;
      prep(std::min(p.M, t * per), std::min(p.M, (t + 1) * per));
    });
  } else {
    prep(0, p.M);
  }
  p.xq = xq;
  p.dx = dx;
  p.xsum = xsum;
  p.ecorr = ec;
  auto part = [&](int t) {
    int n0, n1;
    cols(t, n0, n1);
    if (n0 < n1) range(p, n0, n1);
  };
  if (nt == 1) part(0);
  else pl.run_chunks(nc, part);
}
#endif  // RN_X86
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
  Pool& pl = pool();
  const int nt = (static_cast<long>(M) * N * K < (1l << 16)) ? 1 : pl.size();
  // Columns in ~4 chunks per thread, taken dynamically (a thread slowed by another job does less), in
  // multiples of 16 so chunks do not share cache lines of `out`.
  const int nc = nt == 1 ? 1 : 4 * nt;
  auto cols = [&](int c, int& n0, int& n1) {
    int per = ((N + nc - 1) / nc + 15) / 16 * 16;
    n0 = std::min(N, c * per);
    n1 = std::min(N, (c + 1) * per);
  };
#if RN_X86
  // fp16/bf16 x only: the two-term int8 x is exact to ~2^-16 of each group's largest value, well under
  // the input's own rounding; fp32 x keeps the exact fp32 kernel below.
  if (isa_level() >= 2 && !std::is_same<XT, float>::value && K % (16 * PW) == 0) {
    thread_local std::vector<int8_t> hb, lb;
    thread_local std::vector<float> db, sb, eb;
    const size_t MK = static_cast<size_t>(M) * K, MG = static_cast<size_t>(M) * G;
    int8_t* h = scratch(hb, MK);
    int8_t* l = scratch(lb, MK);
    float* dx = scratch(db, MG);
    float* xsum = scratch(sb, MG);
    float* ec = scratch(eb, MG);
    if (nt > 1 && M >= 8) {
      pl.run([&](int t) {
        const int per = (M + nt - 1) / nt;
        const int m0 = std::min(M, t * per), m1 = std::min(M, (t + 1) * per);
        vnni_prep(x_in, m0, m1, K, gs, bits, h, l, dx, xsum, ec);
      });
    } else {
      vnni_prep(x_in, 0, M, K, gs, bits, h, l, dx, xsum, ec);
    }
    VProblem vp{M, N, K, G, gs, h, l, dx, xsum, ec, w, s_in, b_in, out_t};
    auto part = [&](int t) {
      int n0, n1;
      cols(t, n0, n1);
      if (n0 >= n1) return;
      if (bits == 4) vnni_range<4, ST, XT>(vp, n0, n1);
      else vnni_range<8, ST, XT>(vp, n0, n1);
    };
    if (nt == 1) part(0);
    else pl.run_chunks(nc, part);
    return;
  }
  const int Gp = (G + 7) / 8 * 8;
  IProblem ip{M, N, K, G, Gp, gs, nullptr, nullptr, nullptr, nullptr, w, s_in, b_in, out_t};
  if (isa_level() == 1 && bits == 4 && std::is_same<XT, mx::bfloat16_t>::value && K % 64 == 0) {
    run_int<int8_t>(x_in, ip, 64, 32, 7.5f, nt, nc, cols, [](const IProblem& p, int n0, int n1) {
      i8_range<ST, XT>(p, n0, n1);
    });
    return;
  }
  if (isa_level() == 1 && !std::is_same<XT, float>::value && K % (8 * PW) == 0) {
    run_int<int16_t>(x_in, ip, 8 * PW, 16, bits == 4 ? 7.5f : 127.5f, nt, nc, cols,
                     [bits](const IProblem& p, int n0, int n1) {
                       if (bits == 4) i16_range<4, ST, XT>(p, n0, n1);
                       else i16_range<8, ST, XT>(p, n0, n1);
                     });
    return;
  }
#endif
  const int VPB = 8 * PW;
  const bool vec = use_avx2() && (K % VPB == 0);

  thread_local std::vector<float> xb, xsb, xpb, sfb, bfb, ob;
  float* x = scratch(xb, static_cast<size_t>(M) * K);
  float* xsum = scratch(xsb, static_cast<size_t>(M) * G);
  float* xp = vec ? scratch(xpb, static_cast<size_t>(M) * K) : nullptr;
  to_float(x_in, x, static_cast<size_t>(M) * K);
  for (int m = 0; m < M; ++m) {
    const float* xr = x + static_cast<size_t>(m) * K;
    for (int g = 0; g < G; ++g) {
      float acc = 0.f;
      for (int k = g * gs; k < (g + 1) * gs; ++k) acc += xr[k];
      xsum[static_cast<size_t>(m) * G + g] = acc;
    }
    if (vec) {
      float* xpr = xp + static_cast<size_t>(m) * K;
      for (int b0 = 0; b0 < K; b0 += VPB)
        for (int i = 0; i < 8; ++i)
          for (int j = 0; j < PW; ++j) xpr[b0 + j * 8 + i] = xr[b0 + i * PW + j];
    }
  }
  float* sf = scratch(sfb, static_cast<size_t>(N) * G);
  float* bf = scratch(bfb, static_cast<size_t>(N) * G);
  to_float(s_in, sf, static_cast<size_t>(N) * G);
  to_float(b_in, bf, static_cast<size_t>(N) * G);
  const bool direct = std::is_same<XT, float>::value;
  float* out = direct ? reinterpret_cast<float*>(out_t) : scratch(ob, static_cast<size_t>(M) * N);
  Problem p{M, N, K, G, gs, bits, x, xp, xsum, w, sf, bf, out};
  auto part = [&](int t) {
    int n0, n1;
    cols(t, n0, n1);
    if (n0 >= n1) return;
#if RN_X86
    if (vec) {
      if (bits == 4) avx2_range<4>(p, n0, n1);
      else avx2_range<8>(p, n0, n1);
      return;
    }
#endif
    scalar_range(p, n0, n1);
  };
  if (nt == 1) part(0);
  else pl.run_chunks(nc, part);
  if (!direct)
    for (size_t i = 0; i < static_cast<size_t>(M) * N; ++i) out_t[i] = static_cast<XT>(out[i]);
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
  const Strided view = strided_view(x);
  auto run = [=](const auto* sp, const auto* bp) {
    thread_local std::vector<XT> xb;
    run_typed(row_major(xp, view, xb), wp, sp, bp, op, M, N, K, gs, bits);
  };
  auto sd = s.dtype();
  if (sd == mx::float32) {
    enc.dispatch([=, sp = s.data<float>(), bp = b.data<float>()] { run(sp, bp); });
  } else if (sd == mx::float16) {
    enc.dispatch([=, sp = s.data<mx::float16_t>(), bp = b.data<mx::float16_t>()] { run(sp, bp); });
  } else {
    enc.dispatch([=, sp = s.data<mx::bfloat16_t>(), bp = b.data<mx::bfloat16_t>()] { run(sp, bp); });
  }
}

bool float_dtype(mx::Dtype d) { return d == mx::float32 || d == mx::float16 || d == mx::bfloat16; }

}  // namespace

const char* isa() {
  static const char* names[] = {"scalar", "avx2", "avx512_vnni"};
  return names[isa_level()];
}
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
  auto x = mx::astype(x_in, mx::promote_types(x_in.dtype(), scales_in.dtype()), s);
  auto w = as_row_contiguous(w_in, s);
  auto sc = as_row_contiguous(scales_in, s);
  auto bi = as_row_contiguous(biases_in, s);
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
  for (const auto* a : {&w, &s, &b})  // x may be any view: run_x reads it
    if (!a->flags().row_contiguous) throw std::runtime_error("[NativeQuantizedMatmul] input not row-contiguous");
  out.set_data(mx::allocator::malloc(out.nbytes()));
  const int K = x.shape(-1);
  const int N = w.shape(0);
  const int M = static_cast<int>(x.size() / std::max<size_t>(1, K));
  if (M == 0) return;
  with_float_type(x.dtype(), [&](auto tag) { run_x<decltype(tag)>(x, w, s, b, out, M, N, K, group_size_, bits_); });
}

void NativeQuantizedMatmul::eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) {
  throw std::runtime_error("[NativeQuantizedMatmul] CPU only");
}

bool NativeQuantizedMatmul::is_equivalent(const mx::Primitive& other) const {
  const auto& o = static_cast<const NativeQuantizedMatmul&>(other);
  return group_size_ == o.group_size_ && bits_ == o.bits_;
}

}  // namespace runtime_native
