// Logging: spdlog, one process-wide logger. Never log secrets or push tokens.
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

namespace sipwake {

// Appends `text` to `out` as the logs show it: control bytes (\n \r \t, else \xNN; \u00NN in
// JSON) and bytes that are not UTF-8 escaped; in JSON also '"' and '\\'. Every log line's message
// goes through this, so raw bytes from the network never reach a terminal or a log parser.
void appendEscapedForLog(std::string_view text, bool json, spdlog::memory_buf_t& out);

// Sets level ("trace".."off") and format ("text" or "json"). Returns false (and changes nothing)
// for an unknown level. May be called again (a reload); lines being written finish in the old form.
bool configureLogging(std::string_view level, std::string_view format);

}  // namespace sipwake

#define SW_LOG_TRACE(...) SPDLOG_TRACE(__VA_ARGS__)
#define SW_LOG_DEBUG(...) SPDLOG_DEBUG(__VA_ARGS__)
#define SW_LOG_INFO(...) SPDLOG_INFO(__VA_ARGS__)
#define SW_LOG_WARN(...) SPDLOG_WARN(__VA_ARGS__)
#define SW_LOG_ERROR(...) SPDLOG_ERROR(__VA_ARGS__)
