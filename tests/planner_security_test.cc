// Security of cairn-planner over real gRPC: bearer tokens with roles (missing, wrong and
// under-privileged tokens) and TLS with and without client certificates.
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "planner/catalog/clusters.h"
#include "tests/planner_test_util.h"

namespace cairn::testing {
namespace {

namespace v1 = ::cairn::v1;

constexpr char kAdmin[] = "3f1c0e0cbd1b4f7aa7e2d55f0e1e2a9d";
constexpr char kClient[] = "77ab52c4a1c24d6c9b3d0f1e8a7c6b01";
constexpr char kAgent[] = "c0de8f1e2d3c4b5a69788796a5b4c342";

std::string ReadFile(const std::string& path) {
  std::ifstream in(RunfilePath(path));
  std::stringstream s;
  s << in.rdbuf();
  EXPECT_FALSE(s.str().empty()) << path;
  return s.str();
}

class TokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    planner::ServerOptions options = TestOptions();
    options.token_file = WriteTempFile(
        "tokens", absl::StrCat("# test tokens\nadmin ", kAdmin, "\nclient ", kClient,
                               "\nagent ", kAgent, "\n"));
    absl::StatusOr<std::unique_ptr<planner::Server>> s = StartPlanner(options, TempDb("auth"));
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    auto channel = Connect(server_->port());
    profiles_ = v1::Profiles::NewStub(channel);
    agents_ = v1::Agents::NewStub(channel);
    planner_ = v1::Planner::NewStub(channel);
  }

  grpc::Status PutProfile(const std::string& token, v1::StoredHardwareProfile* out) {
    v1::PutHardwareProfileRequest put;
    *put.mutable_profile() = planner::LookupHardware("h100-sxm").value();
    return profiles_->PutHardwareProfile(Context(token).get(), put, out);
  }
  grpc::Status DeleteProfile(const std::string& token, const std::string& id) {
    v1::DeleteProfileRequest del;
    del.set_id(id);
    v1::DeleteProfileResponse out;
    return profiles_->DeleteHardwareProfile(Context(token).get(), del, &out);
  }
  grpc::Status Register(const std::string& token) {
    v1::RegisterAgentRequest r;
    r.set_hostname("node1");
    r.set_address("node1:7071");
    r.set_num_devices(8);
    v1::RegisterAgentResponse out;
    return agents_->RegisterAgent(Context(token).get(), r, &out);
  }

  std::unique_ptr<planner::Server> server_;
  std::unique_ptr<v1::Profiles::Stub> profiles_;
  std::unique_ptr<v1::Agents::Stub> agents_;
  std::unique_ptr<v1::Planner::Stub> planner_;
};

TEST_F(TokenTest, MissingAndWrongTokensAreUnauthenticated) {
  v1::ListAgentsResponse list;
  EXPECT_THAT(agents_->ListAgents(Context().get(), {}, &list),
              GrpcIs(grpc::StatusCode::UNAUTHENTICATED,
                     "missing credentials: send the metadata 'authorization: Bearer <token>'"));
  const grpc::Status wrong =
      agents_->ListAgents(Context("not-the-token-you-were-given").get(), {}, &list);
  EXPECT_THAT(wrong, GrpcIs(grpc::StatusCode::UNAUTHENTICATED, "invalid token"));
  EXPECT_EQ(wrong.error_message().find("not-the-token"), std::string::npos);
  auto ctx = Context();
  ctx->AddMetadata("authorization", kClient);  // no "Bearer "
  EXPECT_THAT(agents_->ListAgents(ctx.get(), {}, &list),
              GrpcIs(grpc::StatusCode::UNAUTHENTICATED, "must be 'Bearer <token>'"));
}

TEST_F(TokenTest, UnderPrivilegedTokensArePermissionDenied) {
  v1::StoredHardwareProfile stored;
  ASSERT_TRUE(PutProfile(kAgent, &stored).ok());  // agents upload measured profiles
  EXPECT_THAT(DeleteProfile(kAgent, stored.id()),
              GrpcIs(grpc::StatusCode::PERMISSION_DENIED,
                     "an agent token may not call cairn.v1.Profiles/DeleteHardwareProfile"));
  EXPECT_THAT(Register(kClient),
              GrpcIs(grpc::StatusCode::PERMISSION_DENIED,
                     "a client token may not call cairn.v1.Agents/RegisterAgent; this needs a "
                     "token with role admin or agent"));
  v1::PlanResponse plan;
  EXPECT_THAT(planner_->Plan(Context(kAgent).get(), TinyPlanRequest(), &plan),
              GrpcIs(grpc::StatusCode::PERMISSION_DENIED, "agent token may not call"));
  // The right roles pass.
  EXPECT_TRUE(Register(kAgent).ok());
  EXPECT_TRUE(planner_->Plan(Context(kClient).get(), TinyPlanRequest(), &plan).ok());
  EXPECT_TRUE(DeleteProfile(kClient, stored.id()).ok());
  ASSERT_TRUE(PutProfile(kAgent, &stored).ok());
  EXPECT_TRUE(DeleteProfile(kAdmin, stored.id()).ok());
  EXPECT_TRUE(Register(kAdmin).ok());
}

TEST_F(TokenTest, StreamsAreCheckedToo) {
  v1::WatchAssignmentsRequest watch;
  watch.set_agent_id("agent-1");
  auto ctx = Context(kClient);
  auto reader = agents_->WatchAssignments(ctx.get(), watch);
  v1::Assignment a;
  EXPECT_FALSE(reader->Read(&a));
  EXPECT_THAT(reader->Finish(), GrpcIs(grpc::StatusCode::PERMISSION_DENIED, "client token"));
  auto ctx2 = Context();
  auto stream = planner_->PlanStream(ctx2.get(), TinyPlanRequest());
  v1::PlanProgress p;
  EXPECT_FALSE(stream->Read(&p));
  EXPECT_THAT(stream->Finish(), GrpcIs(grpc::StatusCode::UNAUTHENTICATED, "missing credentials"));
}

TEST(TokenFileTest, ABadTokenFileStopsTheServerFromStarting) {
  planner::ServerOptions options = TestOptions();
  options.token_file = WriteTempFile("bad-tokens", "superuser 0123456789abcdef0123\n");
  absl::StatusOr<std::unique_ptr<planner::Server>> s = StartPlanner(options, TempDb("bad"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("line 1: unknown role 'superuser'"), std::string::npos);
  EXPECT_EQ(s.status().message().find("0123456789abcdef0123"), std::string::npos);
}

class TlsTest : public ::testing::Test {
 protected:
  void Start(bool require_client_cert) {
    planner::ServerOptions options = TestOptions();
    options.tls_cert_file = RunfilePath("tests/testdata/tls/server.pem");
    options.tls_key_file = RunfilePath("tests/testdata/tls/server.key");
    if (require_client_cert) options.tls_client_ca_file = RunfilePath("tests/testdata/tls/ca.pem");
    absl::StatusOr<std::unique_ptr<planner::Server>> s = StartPlanner(options, TempDb("tls"));
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
  }
  grpc::Status ListAgents(std::shared_ptr<grpc::ChannelCredentials> creds) {
    auto channel = grpc::CreateChannel(absl::StrCat("localhost:", server_->port()), creds);
    v1::ListAgentsResponse list;
    return v1::Agents::NewStub(channel)->ListAgents(Context("", absl::Seconds(10)).get(), {},
                                                    &list);
  }
  std::shared_ptr<grpc::ChannelCredentials> Tls(bool with_client_cert) {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = ReadFile("tests/testdata/tls/ca.pem");
    if (with_client_cert) {
      o.pem_cert_chain = ReadFile("tests/testdata/tls/client.pem");
      o.pem_private_key = ReadFile("tests/testdata/tls/client.key");
    }
    return grpc::SslCredentials(o);
  }
  std::unique_ptr<planner::Server> server_;
};

TEST_F(TlsTest, TlsClientsConnectPlaintextClientsDoNot) {
  Start(/*require_client_cert=*/false);
  EXPECT_TRUE(ListAgents(Tls(false)).ok());
  EXPECT_EQ(ListAgents(grpc::InsecureChannelCredentials()).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, MutualTlsNeedsAClientCertificateFromTheCa) {
  Start(/*require_client_cert=*/true);
  EXPECT_TRUE(ListAgents(Tls(true)).ok());
  EXPECT_EQ(ListAgents(Tls(false)).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST(TlsOptionsTest, CertWithoutKeyIsRefusedNamingTheFlags) {
  planner::ServerOptions options = TestOptions();
  options.tls_cert_file = RunfilePath("tests/testdata/tls/server.pem");
  absl::StatusOr<std::unique_ptr<planner::Server>> s = StartPlanner(options, TempDb("tls-bad"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("--tls-cert and --tls-key go together"), std::string::npos);
  options.tls_key_file = "/nonexistent/server.key";
  s = StartPlanner(options, TempDb("tls-bad"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("--tls-key /nonexistent/server.key: cannot read"),
            std::string::npos);
}

}  // namespace
}  // namespace cairn::testing
