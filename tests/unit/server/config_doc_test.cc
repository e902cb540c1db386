// docs/configuration.md must list exactly the keys the parser accepts. The documented keys come
// from the tables of the document; the accepted keys are found by asking the parser itself:
// every identifier-like string literal of src/server/config.cc is tried as a key of every
// section, and a key the parser knows fails with anything but "unknown key".
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "server/config.h"

namespace sipwake::server {
namespace {

std::string readSource(const std::string& relative) {
  std::ifstream in(std::string(SIPWAKE_SOURCE_DIR) + "/" + relative, std::ios::binary);
  EXPECT_TRUE(in.good()) << relative;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Section as the document writes it ("server", "listen", "push.app") → its keys.
using KeysBySection = std::map<std::string, std::set<std::string>>;

// Rows "| `key` | type | default | meaning |" under "## [section]" / "## [[section]]"; in the
// [push] table, rows "| `[[push.app]]` `key` | ..." belong to section "push.app". Every row must
// state a type and a default (or "-"/"—" for none).
KeysBySection documentedKeys(const std::string& doc) {
  KeysBySection keys;
  static const std::regex heading(R"(^## \[\[?([a-z_.]+)\]?\]\s*$)");
  static const std::regex row(R"(^\| (`\[\[([a-z_.]+)\]\]` )?`([a-z0-9_]+)` \|([^|]*)\|([^|]*)\|)");
  std::string section;
  std::istringstream in(doc);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, heading)) {
      section = m[1];
      continue;
    }
    if (line.rfind("## ", 0) == 0) section.clear();
    if (section.empty() || !std::regex_search(line, m, row)) continue;
    const std::string in_section = m[2].matched ? std::string(m[2]) : section;
    keys[in_section].insert(m[3]);
    auto blank = [](const std::string& cell) {
      return cell.find_first_not_of(' ') == std::string::npos;
    };
    EXPECT_FALSE(blank(m[4])) << "no type for [" << in_section << "] " << m[3];
    EXPECT_FALSE(blank(m[5])) << "no default for [" << in_section << "] " << m[3];
  }
  return keys;
}

// A one-line config with `key` (given a value of a type no key takes: an empty inline table)
// in `section`. Everything is on line 1 and the probed key comes first, so its own error is the
// one reported.
std::string probe(const std::string& section, const std::string& key) {
  const std::string entry = key + " = {}";
  if (section == "listen") return "listen = [{" + entry + "}]\n";
  if (section == "push.app") return "push = {app = [{" + entry + "}]}\n";
  return section + " = {" + entry + "}\n";
}

bool parserKnows(const std::string& section, const std::string& key) {
  auto r = parseConfig(probe(section, key), "probe.toml");
  EXPECT_FALSE(r.isOk()) << probe(section, key) << " was accepted";
  return !r.isOk() && r.status().message().find(": unknown key") == std::string::npos;
}

TEST(ConfigDocTest, DocumentedKeysAreExactlyTheParsedOnes) {
  const KeysBySection documented = documentedKeys(readSource("docs/configuration.md"));
  // The probe must be able to tell: a made-up key is unknown, a real one known.
  ASSERT_FALSE(parserKnows("server", "no_such_key"));
  ASSERT_TRUE(parserKnows("server", "workers"));

  std::set<std::string> candidates;
  const std::string source = readSource("src/server/config.cc");
  static const std::regex literal(R"re("([a-z][a-z0-9_]*)")re");
  for (auto it = std::sregex_iterator(source.begin(), source.end(), literal);
       it != std::sregex_iterator(); ++it) {
    candidates.insert((*it)[1]);
  }
  ASSERT_GT(candidates.size(), 50u);

  const std::vector<std::string> sections{"server", "listen", "tls", "limits", "edge",
                                          "timers", "store",  "registrar", "auth",
                                          "proxy",  "push",   "push.app",  "admin"};
  for (const std::string& section : sections) {
    std::set<std::string> parsed;
    for (const std::string& key : candidates) {
      if (parserKnows(section, key)) parsed.insert(key);
    }
    std::set<std::string> doc;
    if (auto it = documented.find(section); it != documented.end()) doc = it->second;
    // [[push.app]] is the key "app" of [push]; the document gives it its own rows.
    if (section == "push" && documented.count("push.app")) doc.insert("app");
    for (const std::string& key : parsed) {
      EXPECT_TRUE(doc.count(key)) << "[" << section << "] " << key
                                  << " is parsed but not documented in docs/configuration.md";
    }
    for (const std::string& key : doc) {
      EXPECT_TRUE(parsed.count(key))
          << "[" << section << "] " << key << " is documented but the parser rejects it";
    }
  }
  // Every documented section is one the test walked.
  for (const auto& [section, keys] : documented) {
    EXPECT_NE(std::find(sections.begin(), sections.end(), section), sections.end())
        << "documented section [" << section << "] is not checked by this test";
  }
}

}  // namespace
}  // namespace sipwake::server
