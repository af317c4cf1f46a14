// Store implementations: the contract of store.h checked on FileStore and TcpStore alike, then what is
// specific to each. Servers bind port 0; nothing sleeps.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/comm/file_store.h"
#include "runtime/comm/store.h"
#include "runtime/comm/tcp_store.h"

namespace cairn::runtime {
namespace {

using ::cairn::testing::StatusIs;
using ::testing::HasSubstr;

std::string FreshDirectory() {
  static std::atomic<int> counter{0};
  return absl::StrCat(std::getenv("TEST_TMPDIR"), "/store-", counter++);
}

// A kind of store, and a way to open several clients of one instance of it.
class StoreFactory {
 public:
  virtual ~StoreFactory() = default;
  virtual std::unique_ptr<Store> NewClient() = 0;
};

class FileStoreFactory final : public StoreFactory {
 public:
  std::unique_ptr<Store> NewClient() override {
    absl::StatusOr<std::unique_ptr<FileStore>> store = FileStore::Open(dir_);
    EXPECT_OK(store.status());
    return store.ok() ? *std::move(store) : nullptr;
  }

 private:
  const std::string dir_ = FreshDirectory();
};

class TcpStoreFactory final : public StoreFactory {
 public:
  TcpStoreFactory() {
    absl::StatusOr<std::unique_ptr<TcpStoreServer>> server = TcpStoreServer::Start("127.0.0.1", 0);
    EXPECT_OK(server.status());
    if (server.ok()) server_ = *std::move(server);
  }
  std::unique_ptr<Store> NewClient() override {
    absl::StatusOr<std::unique_ptr<TcpStore>> client =
        TcpStore::Connect("127.0.0.1", server_->port(), absl::Seconds(30));
    EXPECT_OK(client.status());
    return client.ok() ? *std::move(client) : nullptr;
  }

 private:
  std::unique_ptr<TcpStoreServer> server_;
};

class StoreContractTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "file") {
      factory_ = std::make_unique<FileStoreFactory>();
    } else {
      factory_ = std::make_unique<TcpStoreFactory>();
    }
  }
  std::unique_ptr<StoreFactory> factory_;
};

TEST_P(StoreContractTest, SetThenGetFromAnotherClient) {
  std::unique_ptr<Store> a = factory_->NewClient();
  std::unique_ptr<Store> b = factory_->NewClient();
  ASSERT_OK(a->Set("job/addr/0", "10.0.0.1:1234"));
  ASSERT_OK_AND_ASSIGN(std::string value, b->Get("job/addr/0", absl::ZeroDuration()));
  EXPECT_EQ(value, "10.0.0.1:1234");
  ASSERT_OK(b->Set("job/addr/0", "replaced"));
  ASSERT_OK_AND_ASSIGN(value, a->Get("job/addr/0", absl::Seconds(1)));
  EXPECT_EQ(value, "replaced");
}

TEST_P(StoreContractTest, KeysAndValuesAreArbitraryBytes) {
  std::unique_ptr<Store> store = factory_->NewClient();
  const std::string key("odd key/with %, spaces, \0 and \xff", 31);
  const std::string value("\0\x01\x02 binary \xfe", 13);
  ASSERT_OK(store->Set(key, value));
  ASSERT_OK_AND_ASSIGN(std::string got, store->Get(key, absl::ZeroDuration()));
  EXPECT_EQ(got, value);
  ASSERT_OK(store->Set("empty", ""));
  ASSERT_OK_AND_ASSIGN(got, store->Get("empty", absl::ZeroDuration()));
  EXPECT_EQ(got, "");
  const std::string long_key(1000, 'k');
  const std::string big(1 << 20, 'v');
  ASSERT_OK(store->Set(long_key, big));
  ASSERT_OK_AND_ASSIGN(got, store->Get(long_key, absl::ZeroDuration()));
  EXPECT_EQ(got, big);
  EXPECT_THAT(store->Set("", "x"), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

TEST_P(StoreContractTest, GetWaitsForAWriterOnAnotherThread) {
  std::unique_ptr<Store> reader = factory_->NewClient();
  std::unique_ptr<Store> writer = factory_->NewClient();
  // Whichever runs first, the reader's long wait ends with the value.
  std::thread t([&] { EXPECT_OK(writer->Set("late", "here")); });
  ASSERT_OK_AND_ASSIGN(std::string value, reader->Get("late", absl::Seconds(60)));
  EXPECT_EQ(value, "here");
  t.join();
}

TEST_P(StoreContractTest, MissingKeysTimeOutNamingThem) {
  std::unique_ptr<Store> store = factory_->NewClient();
  EXPECT_THAT(store->Get("nobody/sets/this", absl::Milliseconds(50)),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("nobody/sets/this")));
  ASSERT_OK(store->Set("present", "1"));
  EXPECT_THAT(store->Wait({"present", "absent/1", "absent/2"}, absl::Milliseconds(50)),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       ::testing::AllOf(HasSubstr("absent/1"), HasSubstr("absent/2"),
                                        ::testing::Not(HasSubstr("present")))));
  EXPECT_OK(store->Wait({"present"}, absl::ZeroDuration()));
}

TEST_P(StoreContractTest, ManyRanksRendezvous) {
  // Each of 16 clients publishes its key and waits for everyone's, as a rendezvous does.
  constexpr int kRanks = 16;
  std::vector<std::unique_ptr<Store>> clients;
  for (int r = 0; r < kRanks; ++r) clients.push_back(factory_->NewClient());
  std::vector<std::string> keys;
  for (int r = 0; r < kRanks; ++r) keys.push_back(absl::StrCat("rdv/", r));
  std::vector<std::thread> threads;
  for (int r = 0; r < kRanks; ++r) {
    threads.emplace_back([&, r] {
      EXPECT_OK(clients[r]->Set(keys[r], absl::StrCat("addr-", r)));
      EXPECT_OK(clients[r]->Wait(keys, absl::Seconds(60)));
      for (int peer = 0; peer < kRanks; ++peer) {
        absl::StatusOr<std::string> value = clients[r]->Get(keys[peer], absl::ZeroDuration());
        ASSERT_OK(value.status());
        EXPECT_EQ(*value, absl::StrCat("addr-", peer));
      }
    });
  }
  for (std::thread& t : threads) t.join();
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreContractTest, ::testing::Values("file", "tcp"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

// ---- FileStore only.

TEST(FileStoreTest, CreatesTheDirectoryAndRejectsBadOnes) {
  const std::string dir = FreshDirectory() + "/a/b/c";
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileStore> store, FileStore::Open(dir));
  EXPECT_EQ(store->path(), dir);
  ASSERT_OK(store->Set("k", "v"));
  EXPECT_THAT(FileStore::Open(""), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  // A path under a regular file cannot be a directory.
  const std::string file = FreshDirectory() + "-file";
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileStore> parent, FileStore::Open(FreshDirectory()));
  FILE* f = fopen(file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fclose(f);
  EXPECT_THAT(FileStore::Open(file + "/sub"), StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
  EXPECT_THAT(FileStore::Open(file), StatusIs(absl::StatusCode::kUnavailable,
                                              HasSubstr("not a directory")));
}

// ---- TcpStore only.

TEST(TcpStoreTest, ReportsItsAddresses) {
  ASSERT_OK_AND_ASSIGN(auto server, TcpStoreServer::Start("127.0.0.1", 0));
  EXPECT_GT(server->port(), 0);
  ASSERT_OK_AND_ASSIGN(auto client, TcpStore::Connect("127.0.0.1", server->port(), absl::Seconds(5)));
  EXPECT_EQ(client->local_address(), "127.0.0.1");
  EXPECT_EQ(client->server_address(), absl::StrCat("127.0.0.1:", server->port()));
}

TEST(TcpStoreTest, CreateHostsTheServerOnRankZero) {
  // Port 0 with a hosted server: the server picks a port and the client connects to it.
  ASSERT_OK_AND_ASSIGN(auto host, TcpStore::Create("127.0.0.1", 0, /*host_server=*/true,
                                                   absl::Seconds(5)));
  ASSERT_OK(host->Set("k", "v"));
  ASSERT_OK_AND_ASSIGN(std::string value, host->Get("k", absl::ZeroDuration()));
  EXPECT_EQ(value, "v");
}

TEST(TcpStoreTest, ServerShutdownFailsPendingAndLaterCallsWithUnavailable) {
  ASSERT_OK_AND_ASSIGN(auto server, TcpStoreServer::Start("127.0.0.1", 0));
  ASSERT_OK_AND_ASSIGN(auto client, TcpStore::Connect("127.0.0.1", server->port(), absl::Seconds(5)));
  ASSERT_OK(client->Set("k", "v"));
  // A Get that would wait ten minutes; the server goes away (before or during the wait).
  std::thread stopper([&] { server.reset(); });
  absl::StatusOr<std::string> pending = client->Get("never", absl::Minutes(10));
  stopper.join();
  EXPECT_THAT(pending, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("lost the connection")));
  EXPECT_THAT(client->Set("k", "v"), StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
}

TEST(TcpStoreTest, ConnectGivesUpAtTheTimeout) {
  // A port nobody listens on any more: the one a server just released.
  ASSERT_OK_AND_ASSIGN(auto server, TcpStoreServer::Start("127.0.0.1", 0));
  const int port = server->port();
  server.reset();
  EXPECT_THAT(TcpStore::Connect("127.0.0.1", port, absl::Milliseconds(100)),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("no server accepted")));
  EXPECT_THAT(TcpStore::Connect("127.0.0.1", 70000, absl::Seconds(1)),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(TcpStore::Connect("no-such-host.invalid", 1234, absl::Seconds(1)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("resolve")));
}

TEST(TcpStoreTest, PortInUseIsUnavailable) {
  ASSERT_OK_AND_ASSIGN(auto server, TcpStoreServer::Start("127.0.0.1", 0));
  EXPECT_THAT(TcpStoreServer::Start("127.0.0.1", server->port()),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("cannot listen")));
}

TEST(TcpStoreTest, GarbageOnOneConnectionDoesNotHurtOthers) {
  ASSERT_OK_AND_ASSIGN(auto server, TcpStoreServer::Start("127.0.0.1", 0));
  ASSERT_OK_AND_ASSIGN(auto good, TcpStore::Connect("127.0.0.1", server->port(), absl::Seconds(5)));
  // A hand-made connection that sends a request no client would.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(server->port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const char garbage[] = "\x01\xff\xff\xff\xff";  // SET with a 4 GiB key
  ASSERT_EQ(send(fd, garbage, 5, 0), 5);
  char byte;
  EXPECT_EQ(recv(fd, &byte, 1, 0), 0);  // the server closed this connection
  close(fd);
  ASSERT_OK(good->Set("still", "fine"));
  ASSERT_OK_AND_ASSIGN(std::string value, good->Get("still", absl::ZeroDuration()));
  EXPECT_EQ(value, "fine");
}

}  // namespace
}  // namespace cairn::runtime
