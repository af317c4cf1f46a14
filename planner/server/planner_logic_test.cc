#include "planner/server/planner_logic.h"

#include <atomic>
#include <memory>
#include <vector>

#include "absl/synchronization/notification.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "planner/catalog/clusters.h"
#include "planner/server/testing/fake_clock.h"
#include "planner/store/testing/memory_store.h"

namespace cairn::planner {
namespace {

using ::cairn::testing::StatusIs;
using ::testing::HasSubstr;

// llama-tiny on the 4-worker CPU cluster: a real search of a few milliseconds.
cairn::v1::PlanRequest TinyRequest(int global_batch = 16) {
  cairn::v1::PlanRequest r;
  r.set_model_name("llama-tiny");
  r.set_cluster_name("cpu");
  r.mutable_search()->set_global_batch_size(global_batch);
  r.mutable_search()->set_seq_len(256);
  return r;
}

// A search that blocks until released or cancelled (then runs the real, fast search).
struct Gate {
  absl::Notification started;
  absl::Notification release;
  std::atomic<int> calls{0};
};

PlannerOptions GatedOptions(std::shared_ptr<Gate> gate) {
  PlannerOptions o;
  o.search = [gate](const SearchProblem& p, const SearchOptions& opt) {
    if (gate->calls++ == 0) gate->started.Notify();
    if (opt.progress) opt.progress(1, 2);
    while (!gate->release.HasBeenNotified() && !opt.cancelled->load()) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    return Search(p, opt);
  };
  return o;
}

class PlannerLogicTest : public ::testing::Test {
 protected:
  std::unique_ptr<PlannerLogic> Make(PlannerOptions options = {}) {
    return std::make_unique<PlannerLogic>(&store_, &timers_, &metrics_, &clock_, options);
  }
  std::string MetricsText() { return metrics_.TextExposition(); }

  cairn::planner::testing::MemoryStore store_;
  TimerThread timers_;
  Metrics metrics_;
  cairn::planner::testing::FakeClock clock_;
};

TEST_F(PlannerLogicTest, ResolvesCatalogModelAndCluster) {
  auto planner = Make();
  cairn::v1::PlanRequest r = TinyRequest();
  r.set_num_nodes(2);
  r.set_devices_per_node(2);
  ASSERT_OK_AND_ASSIGN(ResolvedPlanRequest resolved, planner->Resolve(r));
  EXPECT_EQ(resolved.search.model().name(), "llama-tiny");
  EXPECT_EQ(resolved.search.cluster().num_nodes(), 2);
  EXPECT_EQ(resolved.search.cluster().hardware().devices_per_node(), 2);
  EXPECT_EQ(resolved.hardware_label, "cpu (built-in default)");
  EXPECT_THAT(resolved.cache_key, HasSubstr(";hw=-;mp=-;cairn=0.1.0"));
  EXPECT_GE(resolved.search.threads(), 1);
}

TEST_F(PlannerLogicTest, CacheKeyIgnoresThreadsButNotTheSearch) {
  auto planner = Make();
  cairn::v1::PlanRequest a = TinyRequest();
  cairn::v1::PlanRequest b = TinyRequest();
  b.mutable_search()->set_threads(1);
  cairn::v1::PlanRequest c = TinyRequest(32);
  ASSERT_OK_AND_ASSIGN(ResolvedPlanRequest ra, planner->Resolve(a));
  ASSERT_OK_AND_ASSIGN(ResolvedPlanRequest rb, planner->Resolve(b));
  ASSERT_OK_AND_ASSIGN(ResolvedPlanRequest rc, planner->Resolve(c));
  EXPECT_EQ(ra.cache_key, rb.cache_key);
  EXPECT_NE(ra.cache_key, rc.cache_key);
  EXPECT_EQ(rb.search.threads(), 1);
}

TEST_F(PlannerLogicTest, ResolvesStoredHardwareProfileByIdAndVersion) {
  auto planner = Make();
  ASSERT_OK_AND_ASSIGN(cairn::v1::HardwareProfile hw, LookupHardware("cpu"));
  ASSERT_OK_AND_ASSIGN(auto v1, store_.PutHardwareProfile(hw, "2026-01-01T00:00:00Z"));
  hw.set_notes("measured again");
  ASSERT_OK_AND_ASSIGN(auto v2, store_.PutHardwareProfile(hw, "2026-01-02T00:00:00Z"));
  ASSERT_EQ(v1.id(), v2.id());
  cairn::v1::PlanRequest r = TinyRequest();
  r.clear_cluster_name();
  r.set_hardware_profile_id(v1.id());
  ASSERT_OK_AND_ASSIGN(ResolvedPlanRequest latest, planner->Resolve(r));
  EXPECT_THAT(latest.cache_key, HasSubstr(";hw=" + v1.id() + "@2;"));
  EXPECT_EQ(latest.search.cluster().hardware().notes(), "measured again");
  r.set_hardware_profile_id(v1.id() + "@1");
  ASSERT_OK_AND_ASSIGN(ResolvedPlanRequest first, planner->Resolve(r));
  EXPECT_THAT(first.cache_key, HasSubstr(";hw=" + v1.id() + "@1;"));
  EXPECT_NE(first.cache_key, latest.cache_key);
  r.set_hardware_profile_id("0000000000000000");
  EXPECT_THAT(planner->Resolve(r),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("hardware_profile_id '0000000000000000': no such profile "
                                 "(Profiles.ListHardwareProfiles lists the stored ones)")));
}

TEST_F(PlannerLogicTest, UnknownCatalogNamesAreInvalidArgumentListingTheChoices) {
  auto planner = Make();
  cairn::v1::PlanRequest r = TinyRequest();
  r.set_model_name("llama-huge");
  EXPECT_THAT(planner->PlanAndWait(r),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("model_name: "), HasSubstr("llama2-7b"))));
  r = TinyRequest();
  r.set_cluster_name("tpu-v9");
  EXPECT_THAT(planner->PlanAndWait(r),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("cluster_name: "), HasSubstr("h100-sxm"))));
}

TEST_F(PlannerLogicTest, BadSearchFieldsNameTheSearchField) {
  auto planner = Make();
  cairn::v1::PlanRequest r = TinyRequest();
  r.mutable_search()->set_seq_len(100000);
  EXPECT_THAT(planner->PlanAndWait(r),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("search.seq_len: 100000 exceeds the max_seq_len 256")));
  EXPECT_EQ(store_.calls(), 0);  // nothing looked up, nothing stored
}

TEST_F(PlannerLogicTest, SecondIdenticalPlanIsACacheHit) {
  auto planner = Make();
  ASSERT_OK_AND_ASSIGN(cairn::v1::PlanResponse first, planner->PlanAndWait(TinyRequest()));
  EXPECT_FALSE(first.cached());
  EXPECT_FALSE(first.plan_id().empty());
  ASSERT_GT(first.result().plans_size(), 0);
  ASSERT_OK_AND_ASSIGN(cairn::v1::PlanResponse second, planner->PlanAndWait(TinyRequest()));
  EXPECT_TRUE(second.cached());
  EXPECT_EQ(second.plan_id(), first.plan_id());
  EXPECT_EQ(second.result().SerializeAsString(), first.result().SerializeAsString());
  const std::string m = MetricsText();
  EXPECT_THAT(m, HasSubstr("cairn_planner_plan_cache_hits_total 1"));
  EXPECT_THAT(m, HasSubstr("cairn_planner_plan_cache_misses_total 1"));
  EXPECT_THAT(m, HasSubstr("cairn_planner_plans_searched_total 1"));

  // no_cache searches again and stores a new plan, which later hits return.
  cairn::v1::PlanRequest fresh = TinyRequest();
  fresh.set_no_cache(true);
  ASSERT_OK_AND_ASSIGN(cairn::v1::PlanResponse third, planner->PlanAndWait(fresh));
  EXPECT_FALSE(third.cached());
  EXPECT_NE(third.plan_id(), first.plan_id());
  ASSERT_OK_AND_ASSIGN(cairn::v1::PlanResponse fourth, planner->PlanAndWait(TinyRequest()));
  EXPECT_EQ(fourth.plan_id(), third.plan_id());
}

// Every answer, fresh or from the cache, carries the Megatron-LM flags `cairn plan --format
// megatron` prints for it (planner/cli/export.h), for clients that do not link the planner.
TEST_F(PlannerLogicTest, AnswersCarryTheMegatronFlags) {
  auto planner = Make();
  ASSERT_OK_AND_ASSIGN(cairn::v1::PlanResponse first, planner->PlanAndWait(TinyRequest()));
  EXPECT_THAT(first.megatron_flags(), HasSubstr("--tensor-model-parallel-size "));
  EXPECT_THAT(first.megatron_flags(), HasSubstr(" --global-batch-size 16 --seq-length 256 "));
  EXPECT_THAT(first.megatron_flags(), HasSubstr(" --num-layers 4 "));  // llama-tiny
  EXPECT_EQ(first.megatron_flags().find('\n'), std::string::npos);
  ASSERT_OK_AND_ASSIGN(cairn::v1::PlanResponse cached, planner->PlanAndWait(TinyRequest()));
  ASSERT_TRUE(cached.cached());
  EXPECT_EQ(cached.megatron_flags(), first.megatron_flags());
  EXPECT_EQ(cached.megatron_note(), first.megatron_note());
}

TEST_F(PlannerLogicTest, GetPlanAndListPlansWithPages) {
  auto planner = Make();
  std::vector<std::string> ids;
  for (int gb : {16, 32, 64}) {
    ASSERT_OK_AND_ASSIGN(cairn::v1::PlanResponse r, planner->PlanAndWait(TinyRequest(gb)));
    ids.push_back(r.plan_id());
  }
  cairn::v1::GetPlanRequest get;
  get.set_plan_id(ids[1]);
  ASSERT_OK_AND_ASSIGN(cairn::v1::PlanResponse got, planner->GetPlan(get));
  EXPECT_EQ(got.result().plans(0).global_batch_size(), 32);
  get.set_plan_id("plan-nope");
  EXPECT_THAT(planner->GetPlan(get),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("plan 'plan-nope' not found (ListPlans shows the stored plans)")));

  cairn::v1::ListPlansRequest list;
  list.set_page_size(2);
  ASSERT_OK_AND_ASSIGN(cairn::v1::ListPlansResponse page1, planner->ListPlans(list));
  ASSERT_EQ(page1.plans_size(), 2);
  EXPECT_EQ(page1.plans(0).plan_id(), ids[0]);
  EXPECT_EQ(page1.plans(0).model_name(), "llama-tiny");
  EXPECT_EQ(page1.plans(0).num_devices(), 4);
  EXPECT_EQ(page1.plans(0).global_batch_size(), 16);
  EXPECT_GT(page1.plans(0).step_time_s(), 0);
  EXPECT_FALSE(page1.plans(0).created_at().empty());
  EXPECT_EQ(page1.next_page_token(), ids[1]);
  list.set_page_token(page1.next_page_token());
  ASSERT_OK_AND_ASSIGN(cairn::v1::ListPlansResponse page2, planner->ListPlans(list));
  ASSERT_EQ(page2.plans_size(), 1);
  EXPECT_EQ(page2.plans(0).plan_id(), ids[2]);
  EXPECT_TRUE(page2.next_page_token().empty());
  list.clear_page_token();
  list.set_model_name("gpt2-124m");
  ASSERT_OK_AND_ASSIGN(cairn::v1::ListPlansResponse none, planner->ListPlans(list));
  EXPECT_EQ(none.plans_size(), 0);
}

TEST_F(PlannerLogicTest, FullQueueIsResourceExhausted) {
  auto gate = std::make_shared<Gate>();
  PlannerOptions o = GatedOptions(gate);
  o.search_workers = 1;
  o.search_queue = 1;
  auto planner = Make(o);
  absl::Notification d1, d2;
  planner->Plan(TinyRequest(16), nullptr, [&](auto r) { d1.Notify(); });
  gate->started.WaitForNotification();  // the only worker is busy
  planner->Plan(TinyRequest(32), nullptr, [&](auto r) { d2.Notify(); });  // waits
  EXPECT_THAT(planner->PlanAndWait(TinyRequest(64)),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("search queue is full: 1 searches running and 1 waiting")));
  gate->release.Notify();
  d1.WaitForNotification();
  d2.WaitForNotification();
}

TEST_F(PlannerLogicTest, SearchOverTheTimeLimitIsDeadlineExceeded) {
  auto gate = std::make_shared<Gate>();  // never released: only the limit stops it
  PlannerOptions o = GatedOptions(gate);
  o.max_search_time = absl::Milliseconds(20);
  auto planner = Make(o);
  EXPECT_THAT(planner->PlanAndWait(TinyRequest()),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       HasSubstr("did not finish within the planner's limit of 20ms "
                                 "(--max-search-seconds); narrow the search")));
  EXPECT_THAT(MetricsText(), HasSubstr("cairn_planner_plans_searched_total 0"));
}

TEST_F(PlannerLogicTest, CancelStopsTheRunningSearchAndFreesTheWorker) {
  auto gate = std::make_shared<Gate>();
  PlannerOptions o = GatedOptions(gate);
  o.search_workers = 1;
  o.search_queue = 0;
  auto planner = Make(o);
  absl::Notification done;
  absl::Status status;
  std::shared_ptr<SearchTicket> t = planner->Plan(TinyRequest(), nullptr, [&](auto r) {
    status = r.status();
    done.Notify();
  });
  gate->started.WaitForNotification();
  t->Cancel();
  done.WaitForNotification();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kCancelled, HasSubstr("cancelled by the client")));
  // The worker is free again: the next search runs (released at once).
  gate->release.Notify();
  EXPECT_OK(planner->PlanAndWait(TinyRequest(32)).status());
  EXPECT_EQ(gate->calls, 2);
}

TEST_F(PlannerLogicTest, CancelOfAQueuedSearchFreesItsSlotAtOnce) {
  auto gate = std::make_shared<Gate>();
  PlannerOptions o = GatedOptions(gate);
  o.search_workers = 1;
  o.search_queue = 1;
  auto planner = Make(o);
  absl::Notification d1;
  planner->Plan(TinyRequest(16), nullptr, [&](auto) { d1.Notify(); });
  gate->started.WaitForNotification();
  absl::Status queued_status;
  std::shared_ptr<SearchTicket> queued =
      planner->Plan(TinyRequest(32), nullptr, [&](auto r) { queued_status = r.status(); });
  EXPECT_EQ(planner->searches_queued(), 1);
  queued->Cancel();  // done runs before Cancel returns
  EXPECT_THAT(queued_status, StatusIs(absl::StatusCode::kCancelled, HasSubstr("cancelled")));
  EXPECT_EQ(planner->searches_queued(), 0);
  gate->release.Notify();
  d1.WaitForNotification();
  EXPECT_EQ(gate->calls, 1);
}

TEST_F(PlannerLogicTest, ShutdownAnswersRunningAndQueuedSearchesWithUnavailable) {
  auto gate = std::make_shared<Gate>();
  PlannerOptions o = GatedOptions(gate);
  o.search_workers = 1;
  auto planner = Make(o);
  absl::Status running, queued;
  planner->Plan(TinyRequest(16), nullptr, [&](auto r) { running = r.status(); });
  gate->started.WaitForNotification();
  planner->Plan(TinyRequest(32), nullptr, [&](auto r) { queued = r.status(); });
  planner->Shutdown();
  EXPECT_THAT(running, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("shutting down")));
  EXPECT_THAT(queued, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("shutting down")));
  EXPECT_THAT(planner->PlanAndWait(TinyRequest(64)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("shutting down")));
}

TEST_F(PlannerLogicTest, ProgressIsForwarded) {
  auto gate = std::make_shared<Gate>();
  gate->release.Notify();
  auto planner = Make(GatedOptions(gate));
  std::vector<std::pair<int64_t, int64_t>> seen;
  absl::Mutex mu;
  absl::Notification done;
  planner->Plan(
      TinyRequest(),
      [&](int64_t d, int64_t t) {
        absl::MutexLock lock(&mu);
        seen.emplace_back(d, t);
      },
      [&](auto) { done.Notify(); });
  done.WaitForNotification();
  absl::MutexLock lock(&mu);
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.front(), std::make_pair(int64_t{1}, int64_t{2}));
}

// Issue 12: identical uncached searches requested concurrently run once; the cache-miss metric
// counts searches run, not requests that joined one or were refused.
TEST_F(PlannerLogicTest, IdenticalConcurrentSearchesRunOnce) {
  auto gate = std::make_shared<Gate>();
  PlannerOptions o = GatedOptions(gate);
  o.search_workers = 1;
  o.search_queue = 0;
  auto planner = Make(o);
  constexpr int kCallers = 5;
  absl::Mutex mu;
  std::vector<absl::StatusOr<cairn::v1::PlanResponse>> answers;
  absl::Notification all_done;
  auto done = [&](absl::StatusOr<cairn::v1::PlanResponse> r) {
    absl::MutexLock lock(&mu);
    answers.push_back(std::move(r));
    if (answers.size() == kCallers) all_done.Notify();
  };
  planner->Plan(TinyRequest(), nullptr, done);
  gate->started.WaitForNotification();
  // The worker is busy and the queue holds nothing, yet identical requests are accepted: they
  // join the running search instead of needing a slot.
  for (int i = 1; i < kCallers; ++i) planner->Plan(TinyRequest(), nullptr, done);
  // A different request still needs a slot of its own.
  EXPECT_THAT(planner->PlanAndWait(TinyRequest(32)),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("search queue is full")));
  gate->release.Notify();
  all_done.WaitForNotification();
  EXPECT_EQ(gate->calls, 1);
  absl::MutexLock lock(&mu);
  for (const auto& a : answers) {
    ASSERT_OK(a.status());
    EXPECT_EQ(a->plan_id(), answers[0]->plan_id());
    EXPECT_FALSE(a->cached());
  }
  const std::string m = MetricsText();
  EXPECT_THAT(m, HasSubstr("cairn_planner_plan_cache_misses_total 1\n"));
  EXPECT_THAT(m, HasSubstr("cairn_planner_plan_searches_joined_total 4\n"));
  EXPECT_THAT(m, HasSubstr("cairn_planner_plans_searched_total 1\n"));
}

TEST_F(PlannerLogicTest, ASearchGoesOnUntilItsLastCallerLeaves) {
  auto gate = std::make_shared<Gate>();
  auto planner = Make(GatedOptions(gate));
  absl::Notification first_done, second_done;
  absl::StatusOr<cairn::v1::PlanResponse> first, second;
  std::shared_ptr<SearchTicket> t1 = planner->Plan(TinyRequest(), nullptr, [&](auto r) {
    first = std::move(r);
    first_done.Notify();
  });
  gate->started.WaitForNotification();
  std::shared_ptr<SearchTicket> t2 = planner->Plan(TinyRequest(), nullptr, [&](auto r) {
    second = std::move(r);
    second_done.Notify();
  });
  t1->Cancel();  // answered at once; the search goes on for t2
  ASSERT_TRUE(first_done.HasBeenNotified());
  EXPECT_THAT(first.status(), StatusIs(absl::StatusCode::kCancelled, HasSubstr("cancelled")));
  gate->release.Notify();
  second_done.WaitForNotification();
  EXPECT_OK(second.status());
  EXPECT_EQ(gate->calls, 1);

  // The last caller leaving stops the search.
  auto gate2 = std::make_shared<Gate>();
  auto planner2 = Make(GatedOptions(gate2));
  absl::Notification third_done;
  absl::Status third;
  std::shared_ptr<SearchTicket> t3 = planner2->Plan(TinyRequest(64), nullptr, [&](auto r) {
    third = r.status();
    third_done.Notify();
  });
  gate2->started.WaitForNotification();
  t3->Cancel();
  third_done.WaitForNotification();  // the gated search saw the flag (never released)
  EXPECT_THAT(third, StatusIs(absl::StatusCode::kCancelled, HasSubstr("cancelled")));
}

TEST_F(PlannerLogicTest, StoreErrorsArePassedOn) {
  auto planner = Make();
  store_.FailNext(absl::UnavailableError("database is locked"));
  EXPECT_THAT(planner->PlanAndWait(TinyRequest()),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("database is locked")));
}

}  // namespace
}  // namespace cairn::planner
