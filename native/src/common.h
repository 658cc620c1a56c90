// Shared by the native kernels (qmm.cpp, mm.cpp): the x86 guard, the thread pool, the ISA choice and
// the per-thread scratch buffers. Inline functions, so that the pool and the ISA choice are one per
// process however many translation units include this.
#pragma once

#if (defined(__x86_64__) || defined(__i386__)) && !defined(RUNTIME_NATIVE_NO_X86)  // the latter: portability check
#define RN_X86 1
#include <immintrin.h>
#else
#define RN_X86 0
#endif

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "mlx/backend/cpu/encoder.h"
#include "mlx/ops.h"
#include "mlx/utils.h"

namespace runtime_native::detail {

inline void cpu_relax() {
#if RN_X86
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// True once done() holds, false after ~0.2-0.5 ms without it. A ~20 us spin first (hand-offs
// between back-to-back matmuls take microseconds), then sched_yield: on a machine whose other core
// is busy (shared hosts), the thread waited on may need this very core, and a pure spin kept it off
// for the whole spin (measured: 2 threads 3-4x slower than 1 with one busy process beside them).
template <typename Done>
inline bool wait_briefly(Done done) {
  for (int i = 0; i < 2000; ++i) {  // pause is ~10-140 cycles depending on the CPU
    if (done()) return true;
    cpu_relax();
  }
  for (int i = 0; i < 1000; ++i) {  // ~0.2 us per yield when nothing else wants the core
    if (done()) return true;
    std::this_thread::yield();
  }
  return done();
}

// ---------------------------------------------------------------- a tiny persistent pool
// Work is handed out in chunks taken from a shared counter: a thread that is slow to start (another
// job holds its core on a shared host) leaves its share to the others instead of holding up the call.
// The counter carries the call's generation in its high 32 bits, so a late worker's claim on a call
// that is over fails, and a claimed chunk keeps its call (and fn) alive until it is done.
class Pool {
 public:
  explicit Pool(int n) : n_(std::max(1, n)) {
    for (int i = 1; i < n_; ++i) std::thread([this] { worker(); }).detach();
  }
  int size() const { return n_; }
  // Runs fn(c) for every c in [0, chunks), on the calling thread and the workers; returns when all are done.
  void run_chunks(int chunks, const std::function<void(int)>& fn) {
    std::lock_guard<std::mutex> call(call_mu_);
    if (n_ == 1 || chunks <= 1) {
      for (int c = 0; c < chunks; ++c) fn(c);
      return;
    }
    const uint64_t g = gen_.load(std::memory_order_relaxed) + 1;
    job_.store(&fn, std::memory_order_relaxed);
    chunks_.store(chunks, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    ticket_.store(g << 32, std::memory_order_release);
    {
      std::lock_guard<std::mutex> lk(mu_);
      gen_.store(g, std::memory_order_release);
    }
    cv_.notify_all();
    work(g);
    // The last chunks are usually done within microseconds: wait actively, then sleep.
    auto all_done = [&] { return done_.load(std::memory_order_acquire) == chunks; };
    if (!wait_briefly(all_done)) {
      std::unique_lock<std::mutex> lk(mu_);
      done_cv_.wait(lk, all_done);
    }
  }
  // Runs fn(0..size()-1), any index on any thread.
  void run(const std::function<void(int)>& fn) { run_chunks(n_, fn); }

 private:
  // Takes and runs chunks of call g until none is left (or the call is over).
  void work(uint64_t g) {
    for (;;) {
      uint64_t t = ticket_.load(std::memory_order_acquire);
      int n;
      do {
        n = chunks_.load(std::memory_order_relaxed);
        if ((t >> 32) != g || static_cast<int>(t & 0xFFFFFFFFu) >= n) return;
      } while (!ticket_.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel, std::memory_order_acquire));
      // Claimed: call g (its fn, its chunk count n) cannot end before this chunk is counted done.
      (*job_.load(std::memory_order_relaxed))(static_cast<int>(t & 0xFFFFFFFFu));
      if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == n) {
        std::lock_guard<std::mutex> lk(mu_);
        done_cv_.notify_all();
      }
    }
  }
  void worker() {
    uint64_t seen = 0;
    for (;;) {
      // Decode calls come back-to-back: wait actively a little before sleeping.
      if (!wait_briefly([&] { return gen_.load(std::memory_order_acquire) != seen; })) {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return gen_.load(std::memory_order_acquire) != seen; });
      }
      seen = gen_.load(std::memory_order_acquire);
      work(seen);
    }
  }
  int n_;
  std::mutex call_mu_, mu_;
  std::condition_variable cv_, done_cv_;
  std::atomic<uint64_t> gen_{0};
  std::atomic<uint64_t> ticket_{0};  // generation << 32 | next chunk
  std::atomic<int> chunks_{0};
  std::atomic<int> done_{0};
  std::atomic<const std::function<void(int)>*> job_{nullptr};
};

inline int configured_threads() {
  if (const char* e = std::getenv("RUNTIME_NATIVE_THREADS")) {
    int n = std::atoi(e);
    if (n >= 1) return std::min(n, 64);
  }
  unsigned hw = std::thread::hardware_concurrency();
  return static_cast<int>(std::max(1u, std::min(hw == 0 ? 1u : hw, 2u)));
}

inline Pool& pool() {
  static Pool* p = new Pool(configured_threads());  // leaked on purpose: no join at exit
  return *p;
}

// 2: AVX-512 VNNI, 1: AVX2 + FMA, 0: scalar. RUNTIME_NATIVE_ISA=avx2|scalar caps it.
inline int isa_level() {
  static const int v = [] {
#if RN_X86
    const char* e = std::getenv("RUNTIME_NATIVE_ISA");
    if (e && std::strcmp(e, "scalar") == 0) return 0;
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) return 0;
    if (e && std::strcmp(e, "avx2") == 0) return 1;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vnni"))
      return 2;
    return 1;
#else
    return 0;
#endif
  }();
  return v;
}
inline bool use_avx2() { return isa_level() >= 1; }

// Scratch buffers reused across calls (no page faults from fresh allocations on every matmul).
template <typename T>
inline T* scratch(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// A non-row-contiguous input's shape and strides (in elements), kept to read it on the stream thread;
// empty for a row-contiguous input (the usual case: nothing is copied or allocated for it).
using Strided = std::optional<std::pair<mx::Shape, mx::Strides>>;

inline Strided strided_view(const mx::array& a) {
  if (a.flags().row_contiguous) return std::nullopt;
  return std::make_pair(a.shape(), a.strides());
}

// The input as a dense row-major array: its own data, or (a strided view) a copy gathered into `buf`.
// The kernels take their x as it comes instead of wrapping it in MLX's Contiguous op at graph build:
// that op cost one graph node per input and call (four per quantized matmul, ~340 nodes per token of
// a 12-layer model), while inputs that are not row-contiguous are rare here (the models' matmul
// inputs are other ops' outputs).
template <typename T>
const T* row_major(const T* src, const Strided& view, std::vector<T>& buf) {
  if (!view) return src;
  const auto& [shape, strides] = *view;
  size_t total = 1;
  for (auto d : shape) total *= static_cast<size_t>(d);
  T* dst = scratch(buf, total);
  const int nd = static_cast<int>(shape.size());
  std::vector<int> idx(nd, 0);
  int64_t off = 0;
  for (size_t i = 0; i < total; ++i) {
    dst[i] = src[off];
    for (int d = nd - 1; d >= 0; --d) {
      off += strides[d];
      if (++idx[d] < shape[d]) break;
      off -= strides[d] * shape[d];
      idx[d] = 0;
    }
  }
  return dst;
}

// f(T{}) with T the C++ type of a float dtype (fp32, fp16 or bf16).
template <typename F>
void with_float_type(mx::Dtype d, F&& f) {
  if (d == mx::float32) f(float{});
  else if (d == mx::float16) f(mx::float16_t{});
  else f(mx::bfloat16_t{});
}

// A parameter (evaluated, row-contiguous: the usual case) goes into the graph as it is; anything else
// through MLX's Contiguous op.
inline mx::array as_row_contiguous(const mx::array& a, mx::Stream s) {
  return a.is_available() && a.flags().row_contiguous ? a : mx::contiguous(a, false, s);
}

// log2 of a power of two (the group sizes 32/64/128).
inline int log2_of(int v) { return __builtin_ctz(static_cast<unsigned>(v)); }

template <typename T>
inline float to_f(T v) {
  return static_cast<float>(v);
}

#if RN_X86
#define RN_AVX2_F16C __attribute__((target("avx2,fma,f16c")))

// Eight fp32, fp16 or bf16 values widened to fp32 (bf16: a shift; fp16: vcvtph2ps).
template <typename T>
RN_AVX2_F16C inline __m256 widen8(const T* p) {
  if constexpr (std::is_same<T, float>::value) {
    return _mm256_loadu_ps(p);
  } else if constexpr (std::is_same<T, mx::float16_t>::value) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  } else {
    return _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
  }
}

__attribute__((target("avx2,fma"))) inline float hsum8(__m256 v) {
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}
#endif

}  // namespace runtime_native::detail
