// Metric cells for the runtime's collector (runtime/metrics/collector.py): a counter and a
// log-bucket histogram whose updates take no Python lock (the bindings release the GIL around
// them), so the engine and writer threads record without waiting on each other or on Python.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <tuple>
#include <vector>

namespace runtime_native {

class CounterCell {
 public:
  // Adds n (n >= 0; a counter only goes up).
  void inc(double n);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class HistogramCell {
 public:
  // Upper bounds, strictly increasing; the last bucket (+Inf) is implied.
  explicit HistogramCell(std::vector<double> bounds);
  // Counts v in the first bucket whose bound is >= v (Prometheus' le semantics).
  void observe(double v);
  // Per-bucket counts (not cumulative; +Inf last), the sum and the count, read together.
  std::tuple<std::vector<uint64_t>, double, uint64_t> read() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  mutable std::mutex lock_;  // uncontended in practice: a few tens of ns, never the GIL
  std::vector<uint64_t> counts_;
  double sum_ = 0.0;
  uint64_t count_ = 0;
};

}  // namespace runtime_native
