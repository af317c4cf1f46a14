// `cairn --planner HOST:PORT plan` takes the same flags and prints the same output forms as the
// local `cairn plan` (docs/cli.md): --format megatron/galvatron and --json, against a real daemon.
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "planner/cli/commands.h"
#include "planner/plan/plan_convert.h"
#include "tests/planner_test_util.h"

namespace cairn::testing {
namespace {

using ::testing::HasSubstr;

struct CliRun {
  int status;
  std::string out, err;
};

CliRun Cairn(const std::vector<std::string>& argv) {
  std::ostringstream out, err;
  const int status = cli::RunCommand(argv, out, err);
  return {status, out.str(), err.str()};
}

class CliRemoteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = StartPlanner(TestOptions(), TempDb("cli_remote"));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }
  // The same command locally and through the daemon.
  std::pair<CliRun, CliRun> Both(const std::vector<std::string>& plan_args) {
    std::vector<std::string> local = {"plan"};
    local.insert(local.end(), plan_args.begin(), plan_args.end());
    std::vector<std::string> remote = {"--planner", absl::StrCat("127.0.0.1:", server_->port())};
    remote.insert(remote.end(), local.begin(), local.end());
    return {Cairn(local), Cairn(remote)};
  }
  std::unique_ptr<planner::Server> server_;
};

// The step time an SVG picture states (its root's data-step-time-s), or "none".
std::string StepOfPicture(const std::string& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  const std::string svg = text.str();
  const size_t at = svg.find("data-step-time-s=\"");
  return at == std::string::npos ? std::string("none")
                                 : svg.substr(at, svg.find('"', at + 18) - at);
}

const std::vector<std::string> kProblem = {"--model", "gpt2-355m", "--cluster", "h100-sxm",
                                           "--nodes", "1", "--global-batch", "64", "--seq-len",
                                           "1024", "--quiet"};

TEST_F(CliRemoteTest, ExportFormatsMatchTheLocalOnes) {
  for (const char* format :
       {"megatron", "galvatron", "torchtitan", "deepspeed", "megatron-deepspeed"}) {
    std::vector<std::string> args = kProblem;
    // TorchTitan has Llama-style models only.
    if (std::string(format) == "torchtitan") args[1] = "llama3-8b";
    args.insert(args.end(), {"--format", format});
    auto [local, remote] = Both(args);
    ASSERT_EQ(local.status, 0) << local.err;
    ASSERT_EQ(remote.status, 0) << format << ": " << remote.err;
    EXPECT_EQ(remote.out, local.out) << format;
    EXPECT_EQ(remote.err, local.err) << format;  // e.g. a substitute's notice or DeepSpeed's flags
  }
  // The uneven-stage re-split works through the daemon as well (restricted to pp=16 of 24 blocks).
  std::vector<std::string> args = {"--model", "gpt2-355m", "--cluster", "h100-sxm", "--nodes", "2",
                                   "--global-batch", "64", "--seq-len", "1024", "--quiet", "--pp",
                                   "16", "--dp-modes", "ddp,zero1", "--uniform-layers", "--format",
                                   "megatron"};
  auto [local, remote] = Both(args);
  ASSERT_EQ(local.status, 0) << local.err;
  ASSERT_EQ(remote.status, 0) << remote.err;
  EXPECT_THAT(remote.out, HasSubstr("--pipeline-model-parallel-size 16"));
  EXPECT_EQ(remote.out, local.out);
}

// --format megatron prints the flags the daemon rendered (PlanResponse.megatron_flags), which it
// re-splits on the hardware it searched, a stored profile's included: here the uniform 1F1B plans
// of 24 blocks on 16 stages (cairn's split, uneven in the middle) are re-split into Megatron's
// stages by the daemon. Rendered here, without the profile's hardware, nothing would be expressible.
TEST_F(CliRemoteTest, MegatronFlagsAreTheDaemonsForAStoredProfileToo) {
  const std::string planner = absl::StrCat("127.0.0.1:", server_->port());
  CliRun hw = Cairn({"clusters", "--json", "h100-sxm"});
  ASSERT_EQ(hw.status, 0) << hw.err;
  CliRun stored = Cairn({"--planner", planner, "profiles", "import", "--file",
                         WriteTempFile("h100_profile.json", hw.out)});
  ASSERT_EQ(stored.status, 0) << stored.err;
  const std::string prefix = "Stored hardware profile ";
  ASSERT_EQ(stored.out.rfind(prefix, 0), 0u) << stored.out;
  const std::string id =
      stored.out.substr(prefix.size(), stored.out.find(' ', prefix.size()) - prefix.size());
  CliRun r = Cairn({"--planner", planner, "plan", "--model", "gpt2-355m", "--nodes", "2",
                    "--global-batch", "64", "--seq-len", "1024", "--quiet", "--pp", "16",
                    "--dp-modes", "ddp,zero1", "--uniform-layers", "--runtime", "cairn",
                    "--format", "megatron", "--profile", id});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("--pipeline-model-parallel-size 16 "));
  EXPECT_THAT(r.out, HasSubstr("--decoder-first-pipeline-num-layers "));
  EXPECT_THAT(r.err, HasSubstr("with stages re-split for Megatron-LM"));
}

TEST_F(CliRemoteTest, JsonIsTheSamePlanEitherWay) {
  std::vector<std::string> args = kProblem;
  args.push_back("--json");
  auto [local, remote] = Both(args);
  ASSERT_EQ(local.status, 0) << local.err;
  ASSERT_EQ(remote.status, 0) << remote.err;
  auto l = planner::PlanFromJson(local.out), r = planner::PlanFromJson(remote.out);
  ASSERT_TRUE(l.ok()) << l.status();
  ASSERT_TRUE(r.ok()) << r.status() << "\n" << remote.out;
  EXPECT_DOUBLE_EQ(r->prediction().step_time_s(), l->prediction().step_time_s());
  EXPECT_EQ(r->layers_size(), l->layers_size());
  EXPECT_THAT(remote.err, HasSubstr("plan id "));
}

TEST_F(CliRemoteTest, PlansShowTakesFormatAndOutput) {
  std::vector<std::string> args = kProblem;
  args.push_back("--json");
  auto [local_json, remote_json] = Both(args);
  ASSERT_EQ(remote_json.status, 0) << remote_json.err;
  const size_t at = remote_json.err.find("plan id ");
  ASSERT_NE(at, std::string::npos) << remote_json.err;
  const std::string id =
      remote_json.err.substr(at + 8, remote_json.err.find_first_of(" \n", at + 8) - at - 8);
  const std::vector<std::string> show = {"--planner", absl::StrCat("127.0.0.1:", server_->port()),
                                         "plans", "show", "--id", id};
  // --format megatron: the problem comes from the stored plan; the same line as `plan --format`.
  // The CLI sent the cluster's hardware in the request, which the plan cannot name as a built-in
  // cluster: it must be said again (and is checked against nothing else in the plan).
  std::vector<std::string> megatron = show;
  megatron.insert(megatron.end(), {"--format", "megatron"});
  CliRun m = Cairn(megatron);
  EXPECT_EQ(m.status, 2);
  EXPECT_THAT(m.err, HasSubstr("--cluster"));
  megatron.insert(megatron.end(), {"--cluster", "h100-sxm"});
  m = Cairn(megatron);
  ASSERT_EQ(m.status, 0) << m.err;
  std::vector<std::string> local = {"plan"};
  local.insert(local.end(), kProblem.begin(), kProblem.end());
  // The stored plan was searched under cairn's runtime traits (`plan --json`), so it is the plan
  // `plan --format megatron --runtime cairn` prints (plain --format megatron searches under
  // megatron-core's traits).
  local.insert(local.end(), {"--format", "megatron", "--runtime", "cairn"});
  EXPECT_EQ(m.out, Cairn(local).out);
  // The other export formats take the same path: the stored plan's closest expressible form.
  for (const char* format : {"torchtitan", "deepspeed"}) {
    std::vector<std::string> exported = show;
    exported.insert(exported.end(), {"--format", format, "--cluster", "h100-sxm"});
    CliRun e = Cairn(exported);
    std::vector<std::string> same = {"plan"};
    same.insert(same.end(), kProblem.begin(), kProblem.end());
    same.insert(same.end(), {"--format", format});
    CliRun direct = Cairn(same);
    if (std::string(format) == "torchtitan") {
      // gpt2-355m is not a model TorchTitan has: the same refusal either way.
      EXPECT_EQ(e.status, 1);
      EXPECT_THAT(e.err, HasSubstr("TorchTitan's llama3 model"));
      EXPECT_EQ(direct.status, 1);
    } else {
      ASSERT_EQ(e.status, 0) << e.err;
      EXPECT_THAT(e.out, HasSubstr("\"train_batch_size\": 64"));
    }
  }
  // --format json: the best Plan; --output writes it too.
  const std::string path = WriteTempFile("shown_plan.json", "");
  std::vector<std::string> json = show;
  json.insert(json.end(), {"--format", "json", "--output", path});
  CliRun j = Cairn(json);
  ASSERT_EQ(j.status, 0) << j.err;
  auto plan = planner::PlanFromJson(j.out);
  ASSERT_TRUE(plan.ok()) << plan.status() << "\n" << j.out;
  std::ifstream f(path);
  std::stringstream written;
  written << f.rdbuf();
  EXPECT_EQ(written.str() + "\n", j.out);
  std::vector<std::string> bad = show;
  bad.insert(bad.end(), {"--format", "toml"});
  EXPECT_EQ(Cairn(bad).status, 2);
  // --svg: the stored plan scored again with the cluster's cost model draws the same step as the
  // local `cairn plan --svg`.
  const std::string remote_svg = WriteTempFile("shown_plan.svg", "");
  const std::string local_svg = WriteTempFile("local_plan.svg", "");
  std::vector<std::string> picture = show;
  picture.insert(picture.end(), {"--svg", remote_svg, "--cluster", "h100-sxm"});
  CliRun p = Cairn(picture);
  ASSERT_EQ(p.status, 0) << p.err;
  std::vector<std::string> local_picture = {"plan"};
  local_picture.insert(local_picture.end(), kProblem.begin(), kProblem.end());
  local_picture.insert(local_picture.end(), {"--svg", local_svg});
  ASSERT_EQ(Cairn(local_picture).status, 0);
  EXPECT_NE(StepOfPicture(remote_svg), "none");
  EXPECT_EQ(StepOfPicture(remote_svg), StepOfPicture(local_svg));
}

TEST_F(CliRemoteTest, PlanDrawsThePictureTheLocalPlanDraws) {
  const std::string remote_svg = WriteTempFile("remote_plan.svg", "");
  const std::string local_svg = WriteTempFile("local_plan_2.svg", "");
  std::vector<std::string> local = {"plan"};
  local.insert(local.end(), kProblem.begin(), kProblem.end());
  local.insert(local.end(), {"--svg", local_svg});
  ASSERT_EQ(Cairn(local).status, 0);
  std::vector<std::string> remote = {"--planner", absl::StrCat("127.0.0.1:", server_->port())};
  remote.insert(remote.end(), local.begin(), local.end());
  remote.back() = remote_svg;
  CliRun r = Cairn(remote);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("picture written to " + remote_svg));
  EXPECT_NE(StepOfPicture(remote_svg), "none");
  EXPECT_EQ(StepOfPicture(remote_svg), StepOfPicture(local_svg));
  // A stored profile's hardware is not here to score the plan with: refused before searching.
  remote.insert(remote.end(), {"--profile", "hw-1"});
  r = Cairn(remote);
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr("--profile"));
}

TEST_F(CliRemoteTest, UnknownFormatIsBadInput) {
  std::vector<std::string> args = kProblem;
  args.insert(args.end(), {"--format", "lightning"});
  auto [local, remote] = Both(args);
  EXPECT_EQ(local.status, 2);
  EXPECT_EQ(remote.status, 2);
}

}  // namespace
}  // namespace cairn::testing
