// Logging: spdlog, one process-wide logger. Never log secrets or push tokens.
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

namespace sipwake {

// Sets level ("trace".."off") and format ("text" or "json"). Returns false for an unknown level.
bool configureLogging(std::string_view level, std::string_view format);

}  // namespace sipwake

#define SW_LOG_TRACE(...) SPDLOG_TRACE(__VA_ARGS__)
#define SW_LOG_DEBUG(...) SPDLOG_DEBUG(__VA_ARGS__)
#define SW_LOG_INFO(...) SPDLOG_INFO(__VA_ARGS__)
#define SW_LOG_WARN(...) SPDLOG_WARN(__VA_ARGS__)
#define SW_LOG_ERROR(...) SPDLOG_ERROR(__VA_ARGS__)
