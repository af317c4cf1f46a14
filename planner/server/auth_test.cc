#include "planner/server/auth.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "proto/cairn/v1/service.pb.h"

namespace cairn::planner {
namespace {

using ::cairn::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kAdmin[] = "admin-token-0123456789";
constexpr char kClient[] = "client-token-0123456789";
constexpr char kAgent[] = "agent-token-0123456789";

Authorizer MakeAuthorizer() {
  absl::StatusOr<TokenTable> t = TokenTable::Parse(
      absl::StrCat("# roles\n\nadmin ", kAdmin, "\nclient\t", kClient, "\n  agent ", kAgent, "  \n"),
      "tokens");
  EXPECT_OK(t.status());
  return Authorizer(*std::move(t));
}

TEST(TokenTableTest, ParsesRolesSkippingCommentsAndBlankLines) {
  ASSERT_OK_AND_ASSIGN(TokenTable t,
                       TokenTable::Parse(absl::StrCat("# c\nadmin ", kAdmin, "\n\nagent ", kAgent),
                                         "f"));
  EXPECT_EQ(t.size(), 2);
  EXPECT_EQ(t.Lookup(kAdmin), Role::kAdmin);
  EXPECT_EQ(t.Lookup(kAgent), Role::kAgent);
  EXPECT_EQ(t.Lookup(kClient), std::nullopt);
  EXPECT_EQ(t.Lookup(""), std::nullopt);
}

struct BadFile {
  std::string text;
  std::string message;
};

TEST(TokenTableTest, RejectsBadFilesNamingTheLineNeverTheToken) {
  const BadFile cases[] = {
      {"", "has no tokens"},
      {"# only a comment\n", "has no tokens"},
      {"root abcdefghijklmnopqrstu\n", "line 1: unknown role 'root' (admin, client or agent)"},
      {"admin\n", "line 1: expected 'ROLE TOKEN' (two fields), found 1"},
      {"admin a b\n", "found 3 fields"},
      {"\nclient tiny-tok\n", "line 2: token shorter than 16 characters"},
      {"admin abcdefghijklmnopqrstu\nclient abcdefghijklmnopqrstu\n",
       "line 2: same token as line 1"},
  };
  for (const BadFile& c : cases) {
    absl::StatusOr<TokenTable> t = TokenTable::Parse(c.text, "/etc/cairn/tokens");
    EXPECT_THAT(t, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message))) << c.text;
    EXPECT_THAT(std::string(t.status().message()), HasSubstr("/etc/cairn/tokens"));
    EXPECT_THAT(std::string(t.status().message()), Not(HasSubstr("abcdefghijklmnopqrstu")));
    EXPECT_THAT(std::string(t.status().message()), Not(HasSubstr("tiny-tok")));
  }
}

TEST(TokenTableTest, MissingFileIsNotFound) {
  EXPECT_THAT(TokenTable::LoadFile("/nonexistent/cairn-tokens"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent/cairn-tokens")));
}

// Issue 12: like ssh with keys, a token file every user can read is refused.
TEST(TokenTableTest, AFileEveryUserCanReadIsRefused) {
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/tokens";
  std::ofstream(path) << "admin 0123456789abcdef0123456789abcdef\n";
  ASSERT_EQ(chmod(path.c_str(), 0644), 0);
  EXPECT_THAT(TokenTable::LoadFile(path),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("is accessible by every user of this machine (mode 0644)")));
  ASSERT_EQ(chmod(path.c_str(), 0602), 0);
  EXPECT_THAT(TokenTable::LoadFile(path), StatusIs(absl::StatusCode::kFailedPrecondition,
                                                   HasSubstr("chmod 600 " + path)));
  ASSERT_EQ(chmod(path.c_str(), 0640), 0);  // group-readable: accepted (with a warning)
  EXPECT_OK(TokenTable::LoadFile(path).status());
  ASSERT_EQ(chmod(path.c_str(), 0600), 0);
  ASSERT_OK_AND_ASSIGN(TokenTable t, TokenTable::LoadFile(path));
  EXPECT_EQ(t.size(), 1);
}

TEST(AuthorizerTest, DisabledAllowsEverything) {
  Authorizer none;
  EXPECT_FALSE(none.enabled());
  EXPECT_OK(none.Check("cairn.v1.Profiles/DeleteHardwareProfile", std::nullopt));
}

TEST(AuthorizerTest, MissingMalformedAndUnknownTokensAreUnauthenticated) {
  const Authorizer auth = MakeAuthorizer();
  const char* m = "cairn.v1.Planner/Plan";
  EXPECT_THAT(auth.Check(m, std::nullopt),
              StatusIs(absl::StatusCode::kUnauthenticated,
                       HasSubstr("send the metadata 'authorization: Bearer <token>'")));
  EXPECT_THAT(auth.Check(m, ""), StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("missing")));
  EXPECT_THAT(auth.Check(m, kClient),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("must be 'Bearer <token>'")));
  EXPECT_THAT(auth.Check(m, "Basic abc"),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("must be 'Bearer <token>'")));
  const absl::Status wrong = auth.Check(m, "Bearer not-a-known-token-at-all");
  EXPECT_THAT(wrong, StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("invalid token")));
  EXPECT_THAT(std::string(wrong.message()), Not(HasSubstr("not-a-known-token-at-all")));
  // A prefix of a real token is not the token.
  EXPECT_THAT(auth.Check(m, "Bearer client-token"),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("invalid token")));
}

TEST(AuthorizerTest, RolesFollowTheMethodTable) {
  const Authorizer auth = MakeAuthorizer();
  const std::string admin = absl::StrCat("Bearer ", kAdmin);
  const std::string client = absl::StrCat("bearer ", kClient);  // scheme is case-insensitive
  const std::string agent = absl::StrCat("Bearer  ", kAgent);
  // Admin: everything.
  EXPECT_OK(auth.Check("cairn.v1.Profiles/DeleteHardwareProfile", admin));
  EXPECT_OK(auth.Check("cairn.v1.Agents/RegisterAgent", admin));
  EXPECT_OK(auth.Check("cairn.v1.Unknown/Method", admin));
  // Client: planning, profiles, jobs; not the agent side.
  EXPECT_OK(auth.Check("cairn.v1.Planner/Plan", client));
  EXPECT_OK(auth.Check("cairn.v1.Profiles/DeleteHardwareProfile", client));
  EXPECT_OK(auth.Check("cairn.v1.Jobs/SubmitJob", client));
  EXPECT_THAT(auth.Check("cairn.v1.Agents/RegisterAgent", client),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("a client token may not call cairn.v1.Agents/RegisterAgent; "
                                 "this needs a token with role admin or agent")));
  EXPECT_THAT(auth.Check("cairn.v1.Jobs/ReportJobStatus", client),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("client token")));
  // Agent: its own side and profile uploads; no deletes, no planning, no job control.
  EXPECT_OK(auth.Check("cairn.v1.Agents/Heartbeat", agent));
  EXPECT_OK(auth.Check("cairn.v1.Profiles/PutHardwareProfile", agent));
  EXPECT_OK(auth.Check("cairn.v1.Rendezvous/Wait", agent));
  EXPECT_THAT(auth.Check("cairn.v1.Profiles/DeleteHardwareProfile", agent),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("role admin or client")));
  EXPECT_THAT(auth.Check("cairn.v1.Jobs/CancelJob", agent),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("agent token")));
  // Unknown methods: admin only.
  EXPECT_THAT(auth.Check("cairn.v1.Unknown/Method", client),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("role admin")));
}

TEST(AuthorizerTest, TableCoversEveryMethodOfTheApiExactlyOnce) {
  std::set<std::string> api;
  const google::protobuf::FileDescriptor* file = cairn::v1::PlanRequest::descriptor()->file();
  for (int s = 0; s < file->service_count(); ++s) {
    const google::protobuf::ServiceDescriptor* service = file->service(s);
    for (int m = 0; m < service->method_count(); ++m) {
      api.insert(absl::StrCat(service->full_name(), "/", service->method(m)->name()));
    }
  }
  std::set<std::string> table;
  for (const MethodRoles& m : MethodRoleTable()) {
    EXPECT_TRUE(table.insert(m.method).second) << "twice: " << m.method;
  }
  EXPECT_EQ(api, table);
}

}  // namespace
}  // namespace cairn::planner
