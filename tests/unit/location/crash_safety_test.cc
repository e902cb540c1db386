// kill -9 at a random moment loses no acknowledged binding.
//
// A forked child writes registrations through SqliteLocationStore and, from each `done`, writes
// the acknowledged registration's number to a pipe. The parent SIGKILLs the child once a random
// number of acknowledgements has arrived (the child is mid-stream: more changes queued, a batch
// probably committing), drains what the child had already reported, reopens the database and
// checks that every acknowledged binding is there.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <semaphore>
#include <set>

#include "location/sqlite_location_store.h"
#include "test_util.h"

namespace sipwake::location {
namespace {

using namespace std::chrono_literals;
using testing::contact;
using testing::kNow;
using testing::reg;

constexpr std::uint32_t kChildRegistrations = 50000;

std::string aorFor(std::uint32_t i) { return "sip:user" + std::to_string(i) + "@example.com"; }

// Runs in the forked child; never returns.
[[noreturn]] void childWriter(const std::string& path, int ack_fd) {
  auto opened = SqliteLocationStore::open(path);
  if (!opened || !(*opened)->load(kNow)) _exit(2);
  SqliteLocationStore& store = **opened;
  std::counting_semaphore<512> in_flight(512);  // keeps the queue below its bound
  for (std::uint32_t i = 0; i < kChildRegistrations; ++i) {
    in_flight.acquire();
    Binding b = contact("sip:dev@198.51.100.7:" + std::to_string(1024 + i % 60000), 3600,
                        "<urn:uuid:" + std::to_string(i) + ">", 1);
    store.applyRegistration(reg(aorFor(i), "call-" + std::to_string(i), 1, {b}),
                            testing::inlineExecutor(),
                            [i, ack_fd, &in_flight](Result<std::vector<Binding>> r) {
                              if (r.isOk()) {
                                // 4 bytes < PIPE_BUF: atomic, never interleaved.
                                if (write(ack_fd, &i, sizeof i) != sizeof i) _exit(3);
                              }
                              in_flight.release();
                            });
  }
  _exit(0);  // skips the store's destructor on purpose: no clean shutdown either
}

// Reads 4-byte acknowledgements until `stop_after` have arrived (0: until EOF). Bounded by 20 s
// without progress.
bool readAcks(int fd, std::set<std::uint32_t>& acked, std::size_t stop_after, std::string& buf) {
  char chunk[4096];
  for (;;) {
    while (buf.size() >= 4) {
      std::uint32_t v;
      std::memcpy(&v, buf.data(), 4);
      buf.erase(0, 4);
      acked.insert(v);
      if (stop_after != 0 && acked.size() >= stop_after) return true;
    }
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 20000) <= 0) return false;
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return stop_after == 0;  // EOF
    buf.append(chunk, static_cast<std::size_t>(n));
  }
}

TEST(SqliteCrashSafetyTest, AcknowledgedBindingsSurviveSigkill) {
  std::mt19937 rng(20240601);
  int killed_mid_stream = 0;
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    testing::TempDir dir;
    const std::string path = dir.file("crash.db");
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      childWriter(path, fds[1]);
    }
    close(fds[1]);

    std::size_t kill_after = std::uniform_int_distribution<std::size_t>(1, 8000)(rng);
    std::set<std::uint32_t> acked;
    std::string buf;
    bool reached = readAcks(fds[0], acked, kill_after, buf);
    kill(pid, SIGKILL);
    int wstatus = 0;
    ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
    // Whatever the child reported before it died counts as acknowledged too.
    ASSERT_TRUE(readAcks(fds[0], acked, 0, buf));
    close(fds[0]);
    ASSERT_TRUE(reached || (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0))
        << "child stopped early, status " << wstatus;
    ASSERT_FALSE(acked.empty());
    killed_mid_stream += WIFSIGNALED(wstatus) ? 1 : 0;

    auto opened = SqliteLocationStore::open(path);
    ASSERT_TRUE(opened.isOk()) << opened.status().toString();
    auto report = (*opened)->load(kNow);
    ASSERT_TRUE(report.isOk()) << report.status().toString();
    EXPECT_GE(report->bindings, acked.size());
    std::size_t missing = 0;
    for (std::uint32_t i : acked) {
      if ((*opened)->lookup(aorFor(i), kNow).size() != 1) ++missing;
    }
    EXPECT_EQ(missing, 0u) << "of " << acked.size() << " acknowledged (killed after " << kill_after
                           << ")";
  }
}

}  // namespace
}  // namespace sipwake::location
