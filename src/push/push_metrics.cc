#include "push/push_metrics.h"

#include <string>

namespace sipwake::push {

std::size_t failReasonIndex(std::string_view reason) {
  for (std::size_t i = 0; i + 1 < kFailReasonCount; ++i) {
    if (kFailReasons[i] == reason) return i;
  }
  // Reasons sipwake writes itself with details after a fixed start.
  auto index = [](std::string_view word) {
    for (std::size_t i = 0; i < kFailReasonCount; ++i) {
      if (kFailReasons[i] == word) return i;
    }
    return kFailReasonCount - 1;
  };
  if (reason.starts_with("no push app configured")) return index("no_app");
  if (reason == kNoRefreshTokenReason) return index("refresh_voip_only");
  if (reason.starts_with("push sender shut down")) return index("shut_down");
  if (reason.starts_with("provider token:")) return index("credentials");
  if (reason.starts_with("http_4")) return index("http_4xx");
  if (reason.starts_with("http_5")) return index("http_5xx");
  return kFailReasonCount - 1;
}

PushCounters::PushCounters(std::string_view provider) {
  const std::string p(provider);
  sent_ = &Stats::global().counter("push.sent." + p);
  for (std::size_t i = 0; i < kFailReasonCount; ++i) {
    failed_[i] = &Stats::global().counter("push.failed." + p + "." + std::string(kFailReasons[i]));
  }
}

const PushCounters& PushCounters::of(std::string_view provider) {
  if (provider == "apns") {
    static const PushCounters apns("apns");
    return apns;
  }
  if (provider == "fcm") {
    static const PushCounters fcm("fcm");
    return fcm;
  }
  if (provider == "webhook") {
    static const PushCounters webhook("webhook");
    return webhook;
  }
  static const PushCounters webpush("webpush");
  return webpush;
}

void PushCounters::count(const PushOutcome& o) const {
  if (o.kind == PushOutcome::Kind::kOk) {
    sent_->inc();
  } else {
    failed_[failReasonIndex(o.reason)]->inc();
  }
}

}  // namespace sipwake::push
