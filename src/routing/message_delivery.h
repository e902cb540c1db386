// Delivery of stored MESSAGEs (location::MessageStore): when a device that has messages waiting
// registers, they are sent to its new binding one after the other, oldest first — the next only
// once the previous one got its final response, so they arrive in order.
//
// Each message goes to each device once. The delivery report of every attempt is a log line
// (message id, AOR, device, outcome; never the body) and a counter:
//   message.delivered          2xx: crossed off for this device (gone once every device has it)
//   message.delivery_failed    no 2xx. Timeout, transport error, 408, 480 and 503 leave it stored
//                              for the device's next registration and stop the run; any other
//                              final response (the device refused it) crosses it off.
//   message.expired            swept unreached (sweepExpired), once per device it never reached.
//
// The delivered MESSAGE is rebuilt from what was stored: the original From (tag included), To,
// Call-ID, Content-Type and body, CSeq 1, Max-Forwards 70, a Via of ours, Route from the binding's
// Path. Its next hop: the first Path URI, else the flow the device registered over, else the
// Contact's IP literal (a Contact host that needs DNS is a failed delivery).
//
// Thread: one object per process. onRegistered() runs on the registrar's loop and delivers
// through that loop's transaction layer (attach()); every response comes back on that loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "location/message_store.h"
#include "registrar/registrar.h"
#include "routing/target_resolver.h"
#include "transaction/transaction_layer.h"

namespace sipwake::routing {

class MessageDelivery final : public registrar::RegistrationObserver,
                              public transaction::ClientTransactionUser {
 public:
  using WallClock = std::function<location::SysSeconds()>;
  struct Deps {
    location::MessageStore* store = nullptr;      // required
    std::function<std::size_t()> current_loop;    // index of the loop the caller runs on; required
    WallClock wall_clock;                         // empty: system clock
  };

  explicit MessageDelivery(Deps deps);
  MessageDelivery(const MessageDelivery&) = delete;
  MessageDelivery& operator=(const MessageDelivery&) = delete;

  // REQUIRES: called for every loop before traffic; `layer` outlives this object's use.
  void attach(std::size_t loop, transaction::TransactionLayer* layer);

  void onRegistered(std::string_view aor, const location::Binding& binding,
                    const transport::ReceivedMessage& request) override;

  // Drops the expired messages with their report. Thread: any.
  std::size_t sweepExpired();

  void onResponse(transaction::ClientTransaction& tx, transport::ReceivedMessage&& response) override;
  void onTimeout(transaction::ClientTransaction& tx) override;
  void onTransportError(transaction::ClientTransaction& tx, const Status& error) override;

 private:
  struct Run {
    std::string device_key;
    std::string aor;
    Target target;
    transaction::TransactionLayer* layer = nullptr;
    std::vector<location::StoredMessage> queue;
    std::size_t next = 0;
  };

  void sendNext(std::uint64_t seq);
  void finished(std::uint64_t seq, int code, std::string_view why);

  Deps deps_;
  std::mutex mu_;
  std::vector<transaction::TransactionLayer*> layers_;
  std::map<std::uint64_t, Run> runs_;
  std::set<std::string> busy_devices_;  // a run is under way for these
  std::uint64_t next_seq_ = 0;
};

}  // namespace sipwake::routing
