// Polls a condition until it holds or a bound passes: for state with no event to wait on (another
// thread's or process's effect). Not a fixed sleep: it returns as soon as the condition holds.
#pragma once

#include <chrono>
#include <thread>

namespace sipwake::testing_support {

template <typename Pred>
bool waitUntil(Pred pred, std::chrono::milliseconds bound = std::chrono::seconds(5)) {
  auto deadline = std::chrono::steady_clock::now() + bound;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return pred();
}

}  // namespace sipwake::testing_support
