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

enum class Kind { kCounter, kGauge, kHistogram };

struct Family {
  Kind kind = Kind::kCounter;
  std::string help;
  // label set inside the braces ("" or a="b",...) → value; several names may map to one label
  // set once sanitised: their values add up.
  std::map<std::string, std::int64_t> samples;
  std::map<std::string, Histogram::Snapshot> histograms;
};

// The dotted family name, the HELP text and the labels (without braces) of one name.
void classify(std::string_view name, std::string& dotted, std::string& pattern_or_name,
              std::string& labels) {
  const std::vector<std::string_view> parts = splitDots(name);
  for (std::string_view pattern : kLabelledCounters) {
    const std::vector<std::string_view> pat = splitDots(pattern);
    if (pat.size() != parts.size()) continue;
    bool match = true;
    for (std::size_t i = 0; i < pat.size() && match; ++i) {
      match = isLabelSegment(pat[i]) ? !parts[i].empty() : pat[i] == parts[i];
    }
    if (!match) continue;
    dotted.clear();
    labels.clear();
    for (std::size_t i = 0; i < pat.size(); ++i) {
      if (isLabelSegment(pat[i])) {
        if (!labels.empty()) labels += ",";
        labels += sanitise(pat[i].substr(1, pat[i].size() - 2));
        labels += "=\"" + escapeLabelValue(parts[i]) + "\"";
      } else {
        if (!dotted.empty()) dotted += '.';
        dotted += pat[i];
      }
    }
    pattern_or_name = pattern;
    return;
  }
  dotted = name;
  pattern_or_name = name;
  labels.clear();
}

Family& familyOf(std::map<std::string, Family>& families, std::string_view name, Kind kind,
                 std::string& labels) {
  std::string dotted, shown;
  classify(name, dotted, shown, labels);
  std::string fname;
  const char* what = "counter";
  switch (kind) {
    case Kind::kCounter:
      fname = counterFamilyName(dotted);
      break;
    case Kind::kGauge:
      fname = "sipwake_" + sanitise(dotted);
      what = "gauge";
      break;
    case Kind::kHistogram:
      fname = "sipwake_" + sanitise(dotted) + "_seconds";
      what = "histogram";
      break;
  }
  Family& f = families[fname];
  if (f.help.empty()) {
    f.kind = kind;
    f.help = "sipwake " + std::string(what) + " " + shown +
             (kind == Kind::kHistogram ? " (milliseconds, exposed in seconds)." : ".");
  }
  return f;
}

std::string braces(const std::string& labels) { return labels.empty() ? "" : "{" + labels + "}"; }

}  // namespace

std::string counterFamilyName(std::string_view dotted) {
  return "sipwake_" + sanitise(dotted) + "_total";
}

std::string escapeLabelValue(std::string_view value) { return escape(value, true); }

std::string escapeHelp(std::string_view text) { return escape(text, false); }

std::string secondsText(std::int64_t ms) {
  std::string out = ms < 0 ? "-" : "";
  const std::uint64_t m = ms < 0 ? static_cast<std::uint64_t>(-(ms + 1)) + 1 : ms;
  out += std::to_string(m / 1000);
  std::uint64_t frac = m % 1000;
  if (frac != 0) {
    std::string f = std::to_string(frac);
    f.insert(0, 3 - f.size(), '0');
    while (f.back() == '0') f.pop_back();
    out += "." + f;
  }
  return out;
}

std::string renderCounters(const std::vector<std::pair<std::string, std::uint64_t>>& counters) {
  Stats::Full full;
  full.counters = counters;
  return render(full);
}

std::string render(const Stats::Full& stats) {
  std::map<std::string, Family> families;
  std::string labels;
  for (const auto& [name, value] : stats.counters) {
    Family& f = familyOf(families, name, Kind::kCounter, labels);
    f.samples[labels] += static_cast<std::int64_t>(value);
  }
  for (const auto& [name, value] : stats.gauges) {
    Family& f = familyOf(families, name, Kind::kGauge, labels);
    f.samples[labels] += value;
  }
  for (const auto& [name, h] : stats.histograms) {
    Family& f = familyOf(families, name, Kind::kHistogram, labels);
    f.histograms.emplace(labels, h);
  }
  std::string out;
  for (const auto& [name, f] : families) {
    const char* type = f.kind == Kind::kCounter ? "counter"
                       : f.kind == Kind::kGauge ? "gauge"
                                                : "histogram";
    out += "# HELP " + name + " " + escapeHelp(f.help) + "\n";
    out += "# TYPE " + name + " " + type + "\n";
    for (const auto& [l, v] : f.samples) {
      out += name + braces(l) + " " + std::to_string(v) + "\n";
    }
    for (const auto& [l, h] : f.histograms) {
      const std::string sep = l.empty() ? "" : l + ",";
      for (std::size_t i = 0; i < h.buckets.size(); ++i) {
        const std::string le = i < h.bounds_ms.size() ? secondsText(h.bounds_ms[i]) : "+Inf";
        out +=
            name + "_bucket{" + sep + "le=\"" + le + "\"} " + std::to_string(h.buckets[i]) + "\n";
      }
      out += name + "_sum" + braces(l) + " " + secondsText(h.sum_ms) + "\n";
      out += name + "_count" + braces(l) + " " + std::to_string(h.count) + "\n";
    }
  }
  return out;
}

}  // namespace sipwake::prometheus
