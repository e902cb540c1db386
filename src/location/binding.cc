#include "location/binding.h"

namespace sipwake::location {

std::string bindingKey(const Binding& b) {
  std::string key;
  if (!b.instance_id.empty()) {
    // '\n' cannot occur in a header value, so it separates instance and reg-id unambiguously.
    key.reserve(3 + b.instance_id.size() + 10);
    key.append("i:").append(b.instance_id).push_back('\n');
    if (b.reg_id) key.append(std::to_string(*b.reg_id));
    return key;
  }
  key.reserve(2 + b.contact_uri.size());
  key.append("c:").append(b.contact_uri);
  return key;
}

}  // namespace sipwake::location
