#include "common/prometheus.h"

#include <map>

namespace sipwake::prometheus {
namespace {

std::vector<std::string_view> splitDots(std::string_view s) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    std::size_t dot = s.find('.', start);
    parts.push_back(s.substr(start, dot == std::string_view::npos ? s.npos : dot - start));
    if (dot == std::string_view::npos) return parts;
    start = dot + 1;
  }
}

bool isLabelSegment(std::string_view seg) {
  return seg.size() > 2 && seg.front() == '{' && seg.back() == '}';
}

std::string sanitise(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    out.push_back(ok ? c : '_');
  }
  return out;
}

// Backslash and newline escaped; double quotes too when `quote`.
std::string escape(std::string_view text, bool quote) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

struct Family {
  std::string help;
  // rendered label set ("" or {a="b",...}) → value; several counters may map to one label set
  // once sanitised, their values add up.
  std::map<std::string, std::uint64_t> samples;
};

// The family and label set of one counter.
void classify(std::string_view name, std::string& family, std::string& help, std::string& labels) {
  const std::vector<std::string_view> parts = splitDots(name);
  for (std::string_view pattern : kLabelledCounters) {
    const std::vector<std::string_view> pat = splitDots(pattern);
    if (pat.size() != parts.size()) continue;
    bool match = true;
    for (std::size_t i = 0; i < pat.size() && match; ++i) {
      match = isLabelSegment(pat[i]) ? !parts[i].empty() : pat[i] == parts[i];
    }
    if (!match) continue;
    std::string dotted;
    labels.clear();
    for (std::size_t i = 0; i < pat.size(); ++i) {
      if (isLabelSegment(pat[i])) {
        labels += labels.empty() ? "{" : ",";
        labels += sanitise(pat[i].substr(1, pat[i].size() - 2));
        labels += "=\"" + escapeLabelValue(parts[i]) + "\"";
      } else {
        if (!dotted.empty()) dotted += '.';
        dotted += pat[i];
      }
    }
    labels += "}";
    family = counterFamilyName(dotted);
    help = "sipwake counter " + std::string(pattern) + ".";
    return;
  }
  family = counterFamilyName(name);
  help = "sipwake counter " + std::string(name) + ".";
  labels.clear();
}

}  // namespace

std::string counterFamilyName(std::string_view dotted) {
  return "sipwake_" + sanitise(dotted) + "_total";
}

std::string escapeLabelValue(std::string_view value) { return escape(value, true); }

std::string escapeHelp(std::string_view text) { return escape(text, false); }

std::string renderCounters(const std::vector<std::pair<std::string, std::uint64_t>>& counters) {
  std::map<std::string, Family> families;
  std::string family, help, labels;
  for (const auto& [name, value] : counters) {
    classify(name, family, help, labels);
    Family& f = families[family];
    if (f.help.empty()) f.help = help;
    f.samples[labels] += value;
  }
  std::string out;
  for (const auto& [name, f] : families) {
    out += "# HELP " + name + " " + escapeHelp(f.help) + "\n";
    out += "# TYPE " + name + " counter\n";
    for (const auto& [l, v] : f.samples) out += name + l + " " + std::to_string(v) + "\n";
  }
  return out;
}

}  // namespace sipwake::prometheus
