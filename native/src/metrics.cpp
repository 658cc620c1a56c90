#include "metrics.h"

#include <algorithm>
#include <stdexcept>

namespace runtime_native {

void CounterCell::inc(double n) {
  if (!(n >= 0.0)) {
    throw std::invalid_argument("a counter only goes up");
  }
  double seen = value_.load(std::memory_order_relaxed);
  // C++17 has no fetch_add for atomic<double>: a compare-exchange loop does the same.
  while (!value_.compare_exchange_weak(seen, seen + n, std::memory_order_relaxed)) {
  }
}

HistogramCell::HistogramCell(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  if (bounds_.empty()) {
    throw std::invalid_argument("histogram bounds must be strictly increasing");
  }
  for (size_t i = 1; i < bounds_.size(); ++i) {
    if (!(bounds_[i - 1] < bounds_[i])) {
      throw std::invalid_argument("histogram bounds must be strictly increasing");
    }
  }
  counts_.assign(bounds_.size() + 1, 0);
}

void HistogramCell::observe(double v) {
  // lower_bound: the first bound >= v, as Python's bisect_left in the pure-Python cell.
  size_t bucket = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  std::lock_guard<std::mutex> guard(lock_);
  counts_[bucket] += 1;
  sum_ += v;
  count_ += 1;
}

std::tuple<std::vector<uint64_t>, double, uint64_t> HistogramCell::read() const {
  std::lock_guard<std::mutex> guard(lock_);
  return {counts_, sum_, count_};
}

}  // namespace runtime_native
