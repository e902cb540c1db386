#include "push/fcm.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <nlohmann/json.hpp>

namespace sipwake::push::fcm {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kFcmErrorType = "type.googleapis.com/google.firebase.fcm.v1.FcmError";
constexpr std::string_view kBadRequestType = "type.googleapis.com/google.rpc.BadRequest";
constexpr std::size_t kMaxMessageLen = 256;
constexpr std::int64_t kMaxRetryAfterSecs = 24 * 3600;

// Non-throwing string member access: "" when absent or not a string.
std::string strField(const Json& obj, std::string_view key) {
  if (!obj.is_object()) return {};
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

bool icontains(std::string_view hay, std::string_view needle) {
  auto it = std::search(hay.begin(), hay.end(), needle.begin(), needle.end(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) ==
           std::tolower(static_cast<unsigned char>(b));
  });
  return it != hay.end();
}

std::optional<int> parseInt(std::string_view s) {
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
std::int64_t daysFromCivil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

// IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
std::optional<std::int64_t> parseImfFixdate(std::string_view v) {
  static constexpr std::array<std::string_view, 12> kMonths = {
      "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (v.size() != 29 || v.substr(3, 2) != ", " || v[7] != ' ' || v[11] != ' ' || v[16] != ' ' ||
      v[19] != ':' || v[22] != ':' || v.substr(25) != " GMT") {
    return std::nullopt;
  }
  auto day = parseInt(v.substr(5, 2));
  auto year = parseInt(v.substr(12, 4));
  auto hh = parseInt(v.substr(17, 2));
  auto mm = parseInt(v.substr(20, 2));
  auto ss = parseInt(v.substr(23, 2));
  auto month = std::find(kMonths.begin(), kMonths.end(), v.substr(8, 3));
  if (!day || !year || !hh || !mm || !ss || month == kMonths.end() || *day < 1 || *day > 31 ||
      *hh > 23 || *mm > 59 || *ss > 60) {
    return std::nullopt;
  }
  auto m = static_cast<unsigned>(month - kMonths.begin() + 1);
  return daysFromCivil(*year, m, static_cast<unsigned>(*day)) * 86400 + *hh * 3600 + *mm * 60 + *ss;
}

bool mentionsRegistrationToken(const Json& error, std::string_view message) {
  if (icontains(message, "registration token")) return true;
  auto details = error.find("details");
  if (details == error.end() || !details->is_array()) return false;
  for (const Json& d : *details) {
    if (!d.is_object() || strField(d, "@type") != kBadRequestType) continue;
    auto fv = d.find("fieldViolations");
    if (fv == d.end() || !fv->is_array()) continue;
    for (const Json& v : *fv) {
      if (v.is_object() && strField(v, "field") == "message.token") return true;
    }
  }
  return false;
}

}  // namespace

std::optional<std::chrono::seconds> parseRetryAfter(std::string_view value, std::int64_t now_unix) {
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(),
                  [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; })) {
    if (value.size() > 9) return std::chrono::seconds(kMaxRetryAfterSecs);
    auto secs = parseInt(value);
    if (!secs) return std::nullopt;
    return std::chrono::seconds(std::min<std::int64_t>(*secs, kMaxRetryAfterSecs));
  }
  auto at = parseImfFixdate(value);
  if (!at) return std::nullopt;
  std::int64_t delta = std::clamp<std::int64_t>(*at - now_unix, 0, kMaxRetryAfterSecs);
  return std::chrono::seconds(delta);
}

Result<PushRequest> buildRequest(const PushBinding& binding, const CallEvent& event,
                                 const RequestOptions& options) {
  if (binding.provider != Provider::kFcm) {
    return Status(StatusCode::kFailedPrecondition, "fcm: binding is not an FCM binding");
  }
  const std::string& token = binding.callToken();
  if (token.empty()) return Status(StatusCode::kFailedPrecondition, "fcm: binding has no token");
  const std::string& project = options.project_id.empty() ? binding.project_id : options.project_id;
  if (project.empty()) return Status(StatusCode::kFailedPrecondition, "fcm: no project id");
  if (options.access_token.empty()) return invalidArgument("fcm: no access token");
  if (options.ttl.count() < 0 || options.ttl.count() > 28 * 86400) {
    return invalidArgument("fcm: ttl must be 0..2419200 seconds");
  }
  Json data = callEventFields(event);  // every value is a string, as FCM requires
  if (event.kind == CallEventKind::kMessage && !binding.linphone.msg_str.empty())
    data["loc_key"] = binding.linphone.msg_str;
  std::string data_text = dumpJson(data);
  if (data_text.size() > kMaxDataBytes) {
    return outOfRange("fcm: data of " + std::to_string(data_text.size()) + " bytes exceeds 4096");
  }
  Json android = {{"priority", "high"}, {"ttl", std::to_string(options.ttl.count()) + "s"}};
  if (!options.collapse_key.empty()) android["collapse_key"] = options.collapse_key;
  Json body = {{"message", {{"token", token}, {"data", std::move(data)}, {"android", android}}}};

  PushRequest req;
  req.authority = kHost;
  req.path = "/v1/projects/" + project + "/messages:send";
  req.body = dumpJson(body);
  req.headers.push_back({"authorization", "Bearer " + options.access_token});
  req.headers.push_back({"content-type", "application/json; charset=UTF-8"});
  return req;
}

Response parseResponse(int status, std::string_view body, std::string_view retry_after,
                       std::int64_t now_unix) {
  Response r;
  r.status = status;
  Json j = Json::parse(body.begin(), body.end(), nullptr, false);
  bool is_obj = !j.is_discarded() && j.is_object();
  if (status >= 200 && status < 300) {
    r.action = PushAction::kOk;
    if (is_obj) r.message_name = strField(j, "name");
    return r;
  }
  const Json* error = nullptr;
  if (is_obj) {
    if (auto e = j.find("error"); e != j.end() && e->is_object()) error = &*e;
  }
  if (error != nullptr) {
    if (auto s = error->find("status"); s != error->end() && s->is_string()) {
      r.rpc_status = s->get<std::string>().substr(0, 64);
    }
    if (auto m = error->find("message"); m != error->end() && m->is_string()) {
      r.message = m->get<std::string>().substr(0, kMaxMessageLen);
    }
    if (auto details = error->find("details"); details != error->end() && details->is_array()) {
      for (const Json& d : *details) {
        if (d.is_object() && strField(d, "@type") == kFcmErrorType) {
          auto code = d.find("errorCode");
          if (code != d.end() && code->is_string())
            r.error_code = code->get<std::string>().substr(0, 64);
        }
      }
    }
  }
  std::optional<std::chrono::seconds> hinted = parseRetryAfter(retry_after, now_unix);
  const std::string& code = r.error_code.empty() ? r.rpc_status : r.error_code;
  if (code == "UNREGISTERED") {
    r.action = PushAction::kRemoveBinding;
  } else if (code == "INVALID_ARGUMENT") {
    r.action = (error != nullptr && mentionsRegistrationToken(*error, r.message))
                   ? PushAction::kRemoveBinding
                   : PushAction::kDrop;
  } else if (code == "SENDER_ID_MISMATCH" || code == "THIRD_PARTY_AUTH_ERROR" ||
             code == "PERMISSION_DENIED") {
    r.action = PushAction::kFatalConfig;
  } else if (code == "UNAUTHENTICATED") {
    r.action = PushAction::kRefreshToken;
  } else if (code == "QUOTA_EXCEEDED" || code == "RESOURCE_EXHAUSTED") {
    r.action = PushAction::kRetry;
    r.retry_after = std::max(hinted.value_or(kMinQuotaBackoff), kMinQuotaBackoff);
  } else if (code == "UNAVAILABLE" || code == "INTERNAL") {
    r.action = PushAction::kRetry;
  } else if (code == "UNSPECIFIED_ERROR" || code == "NOT_FOUND") {
    r.action = PushAction::kDrop;
  } else if (status == 401) {
    r.action = PushAction::kRefreshToken;
  } else if (status == 403) {
    r.action = PushAction::kFatalConfig;
  } else if (status == 429) {
    r.action = PushAction::kRetry;
    r.retry_after = std::max(hinted.value_or(kMinQuotaBackoff), kMinQuotaBackoff);
  } else if (status >= 500) {
    r.action = PushAction::kRetry;
  } else {
    r.action = PushAction::kDrop;
  }
  if (r.action == PushAction::kRetry && !r.retry_after) r.retry_after = hinted;
  return r;
}

}  // namespace sipwake::push::fcm
