// The plain types of problem.h have no behaviour of their own: the plan contract (common/plan) and
// common/collective.h define the shared ones. This file keeps the library non-empty.
#include "planner/problem/problem.h"
