// The command-line rules of common/cli_app.h, without a process: help and version exit 0 on
// stdout, every mistake exits 2 naming it, flagfiles, Flags' values and defaults.
#include "common/cli_app.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "CLI/CLI.hpp"
#include "common/version.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cairn {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Parsed {
  std::optional<int> exit;
  std::string out, err;
};

Parsed Parse(CLI::App& app, const std::vector<std::string>& args) {
  std::ostringstream out, err;
  std::optional<int> exit = ParseCommandLine(app, args, out, err);
  return {exit, out.str(), err.str()};
}

std::string WriteTemp(const std::string& name, const std::string& text) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(dir ? dir : "/tmp") + "/" + name;
  std::ofstream(path) << text;
  return path;
}

// A tool with one subcommand, as `cairn` is built.
struct Tool {
  std::unique_ptr<CLI::App> app = MakeApp("tool", "a test tool");
  Flags plan{app->add_subcommand("plan", "search")};
  Tool() {
    plan.Value("nodes", "N", "nodes in the cluster", "1")
        .Value("model", "NAME", "the model")
        .Value("pp", "1,2,4", "pipeline degrees")
        .Bool("json", "print JSON");
  }
};

TEST(CliAppTest, HelpListsEveryFlagWithItsDefaultAndExitsZero) {
  Tool t;
  Parsed r = Parse(*t.app, {"plan", "--help"});
  ASSERT_EQ(r.exit, 0);
  EXPECT_THAT(r.out, HasSubstr("usage: tool plan"));
  EXPECT_THAT(r.out, HasSubstr("--nodes N"));
  EXPECT_THAT(r.out, HasSubstr("nodes in the cluster (default: 1)"));
  EXPECT_THAT(r.out, HasSubstr("--json"));
  EXPECT_EQ(r.err, "");
  // Help wins over other flags and mistakes before it is reached.
  Tool t2;
  EXPECT_EQ(Parse(*t2.app, {"plan", "--model", "x", "-h"}).exit, 0);
  Tool t3;
  r = Parse(*t3.app, {"--help"});
  EXPECT_EQ(r.exit, 0);
  EXPECT_THAT(r.out, HasSubstr("plan"));  // the subcommands
}

TEST(CliAppTest, VersionSaysHowTheBinaryWasBuilt) {
  Tool t;
  Parsed r = Parse(*t.app, {"--version"});
  ASSERT_EQ(r.exit, 0);
  EXPECT_EQ(r.out, VersionLine("tool") + "\n");
#ifdef NDEBUG
  EXPECT_EQ(std::string(BuildKind()), "opt build");  // -c opt defines NDEBUG
#else
  EXPECT_NE(std::string(BuildKind()), "opt build");
#endif
}

TEST(CliAppTest, EveryMistakeExitsTwoNamingIt) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {{"plan", "--frobnicate", "1"},
            "tool plan: unknown flag --frobnicate (see tool plan --help)"},
           {{"plan", "--frobnicate=1"}, "unknown flag --frobnicate"},
           {{"--frobnicate"}, "tool: unknown flag --frobnicate"},
           {{"plan", "--nodes"}, "--nodes"},
           {{"plan", "stray"}, "unexpected argument 'stray'"},
           {{"plna"}, "unknown command 'plna'"},
           {{"plan", "--json=maybe"}, "--json"},
       }) {
    Tool t;
    Parsed r = Parse(*t.app, c.args);
    EXPECT_EQ(r.exit, kExitBadFlags) << c.args.back();
    EXPECT_THAT(r.err, HasSubstr(c.message));
    EXPECT_EQ(r.out, "");
  }
}

TEST(CliAppTest, FlagsReadGivenValuesElseDefaults) {
  Tool t;
  Parsed r = Parse(*t.app, {"plan", "--nodes=4", "--pp", "1,2", "--nodes", "8", "--json"});
  ASSERT_EQ(r.exit, std::nullopt) << r.err;
  EXPECT_EQ(SelectedCommandPath(*t.app), "tool plan");
  EXPECT_TRUE(t.plan.Has("nodes"));
  EXPECT_EQ(*t.plan.GetInt("nodes"), 8);  // the last one given
  EXPECT_EQ(*t.plan.GetIntList("pp"), (std::vector<int>{1, 2}));
  EXPECT_TRUE(t.plan.Has("json"));
  EXPECT_FALSE(t.plan.Has("model"));
  EXPECT_EQ(t.plan.Get("model"), "");
  EXPECT_EQ(t.plan.Get("model", "llama2-7b"), "llama2-7b");
  EXPECT_FALSE(t.plan.Has("never-declared"));

  Tool u;  // Abseil's underscored spelling names the same flag; the value keeps its underscores
  u.plan.Value("max-tp", "T", "largest tensor-parallel degree");
  ASSERT_EQ(Parse(*u.app, {"plan", "--max_tp=a_b"}).exit, std::nullopt);
  EXPECT_EQ(u.plan.Get("max-tp"), "a_b");

  Tool d;
  ASSERT_EQ(Parse(*d.app, {"plan", "--json=false", "--nodes", "x"}).exit, std::nullopt);
  EXPECT_FALSE(d.plan.Has("json"));
  EXPECT_THAT(d.plan.GetInt("nodes").status().message(),
              HasSubstr("--nodes must be an integer, got 'x'"));
  Tool none;
  ASSERT_EQ(Parse(*none.app, {"plan"}).exit, std::nullopt);
  EXPECT_FALSE(none.plan.Has("nodes"));
  EXPECT_EQ(*none.plan.GetInt("nodes"), 1);  // the declared default
  EXPECT_EQ(*none.plan.GetInt("nodes", 3), 3);
  none.plan.Set("model", "gpt2-124m");
  EXPECT_TRUE(none.plan.Has("model"));
  EXPECT_EQ(none.plan.Get("model"), "gpt2-124m");

  // Values only, without a command line.
  Flags values;
  values.Set("seq-len", "1024");
  EXPECT_EQ(*values.GetInt("seq-len"), 1024);
}

TEST(CliAppTest, PositionalsInOrder) {
  auto app = MakeApp("tool", "");
  Flags probe(app->add_subcommand("probe", ""));
  probe.Positionals("node", "nodes to probe").Bool("quick", "");
  ASSERT_EQ(Parse(*app, {"probe", "a", "--quick", "b"}).exit, std::nullopt);
  EXPECT_EQ(probe.List("node"), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(probe.Has("quick"));
}

TEST(CliAppTest, FlagfilesExpandInPlaceAndTheirMistakesExitTwo) {
  auto make = [](int* workers, std::string* listen) {
    auto app = MakeApp("daemon", "");
    AddFlagfile(app.get());
    app->add_option("--search-workers", *workers, "");
    app->add_option("--listen", *listen, "");
    return app;
  };
  int workers = 4;
  std::string listen = "127.0.0.1:7070";
  const std::string conf =
      WriteTemp("d.conf", "# a comment\n\n--search-workers=2\n  --listen=0.0.0.0:1\n");
  auto app = make(&workers, &listen);
  // The command line after the file overrides it.
  Parsed r = Parse(*app, {"--flagfile=" + conf, "--listen", "h:2"});
  ASSERT_EQ(r.exit, std::nullopt) << r.err;
  EXPECT_EQ(workers, 2);
  EXPECT_EQ(listen, "h:2");
  // "--listen=" is an empty value, not a request for the next argument.
  app = make(&workers, &listen);
  r = Parse(*app, {"--listen=", "--search-workers=3"});
  ASSERT_EQ(r.exit, std::nullopt) << r.err;
  EXPECT_EQ(listen, "");
  EXPECT_EQ(workers, 3);
  // --help lists the defaults of bound variables and --flagfile itself.
  workers = 4;
  app = make(&workers, &listen);
  r = Parse(*app, {"--help"});
  EXPECT_EQ(r.exit, 0);
  EXPECT_THAT(r.out, HasSubstr("(default: 4)"));
  EXPECT_THAT(r.out, HasSubstr("--flagfile FILE"));

  for (const auto& [text, message] : std::vector<std::pair<std::string, std::string>>{
           {"--search-workers=lots\n", "--search-workers"},
           {"--serch-workers=2\n", "unknown flag --serch-workers"},
           {"search-workers=2\n", "is not a flag"}}) {
    app = make(&workers, &listen);
    r = Parse(*app, {"--flagfile=" + WriteTemp("bad.conf", text)});
    EXPECT_EQ(r.exit, kExitBadFlags) << text;
    EXPECT_THAT(r.err, HasSubstr(message)) << text;
  }
  app = make(&workers, &listen);
  r = Parse(*app, {"--flagfile=/nonexistent/d.conf"});
  EXPECT_EQ(r.exit, kExitBadFlags);
  EXPECT_THAT(r.err, HasSubstr("cannot be read"));
}

}  // namespace
}  // namespace cairn
