// The dashboard's static files (src/server/dashboard/*.html, *.js, *.css), embedded in the binary
// at build time (src/server/embed_files.cmake writes dashboard_files.cc): the admin listener
// serves them without a path to configure. Pure data, immutable, any thread.
#pragma once

#include <string_view>
#include <vector>

namespace sipwake::server {

struct DashboardFile {
  std::string_view name;          // the file's base name: "index.html"
  std::string_view content_type;  // from its extension, with charset
  std::string_view body;          // the file's bytes
};

// Every embedded file, in the order of the CMake list.
const std::vector<DashboardFile>& dashboardFiles();

}  // namespace sipwake::server
