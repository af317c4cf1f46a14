// common/proto_fields.h — visiting every set scalar field of a protobuf message by reflection,
// with its path, for checks that apply to all fields of a kind (string lengths, finite numbers).
//
//   auto visit = [](const std::string& path, const google::protobuf::FieldDescriptor* f,
//                   const google::protobuf::Message& m, int index) -> std::string {
//     return f->name() == "secret" ? path + " must not be set" : "";
//   };
//   std::string problem = VisitScalarFields(request, "", visit);   // "" when none
//   std::string bad = NonFiniteField(profile, "profile");          // "profile.device.x = inf"
//
// Paths read "a.b[2].c". Messages nested at any depth are entered (repeated and map fields
// included); a visit returning a non-empty string stops the walk and is returned. Thread-safe.
#ifndef CAIRN_COMMON_PROTO_FIELDS_H_
#define CAIRN_COMMON_PROTO_FIELDS_H_

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace cairn {

// Calls visit(path, field, message holding it, index) for every set non-message field of `m`
// (index -1 for a singular field, else the element's index) under `prefix`.
template <typename Visit>
std::string VisitScalarFields(const google::protobuf::Message& m, const std::string& prefix,
                              Visit& visit) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection* r = m.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(m, &fields);
  for (const FieldDescriptor* f : fields) {
    const int n = f->is_repeated() ? r->FieldSize(m, f) : 1;
    for (int i = 0; i < n; ++i) {
      const std::string path =
          absl::StrCat(prefix, prefix.empty() ? "" : ".", f->name(),
                       f->is_repeated() ? absl::StrCat("[", i, "]") : "");
      const int index = f->is_repeated() ? i : -1;
      std::string problem;
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        problem = VisitScalarFields(
            index < 0 ? r->GetMessage(m, f) : r->GetRepeatedMessage(m, f, index), path, visit);
      } else {
        problem = visit(path, f, m, index);
      }
      if (!problem.empty()) return problem;
    }
  }
  return "";
}

// The first float or double field of `m` that is NaN or infinite, as "<prefix>.device.x = inf";
// "" when every number is finite.
inline std::string NonFiniteField(const google::protobuf::Message& m,
                                  const std::string& prefix = "") {
  using google::protobuf::FieldDescriptor;
  auto visit = [](const std::string& path, const FieldDescriptor* f,
                  const google::protobuf::Message& msg, int index) -> std::string {
    const google::protobuf::Reflection* r = msg.GetReflection();
    double v = 0;
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE) {
      v = index < 0 ? r->GetDouble(msg, f) : r->GetRepeatedDouble(msg, f, index);
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT) {
      v = index < 0 ? r->GetFloat(msg, f) : r->GetRepeatedFloat(msg, f, index);
    } else {
      return "";
    }
    return std::isfinite(v) ? "" : absl::StrCat(path, " = ", v);
  };
  return VisitScalarFields(m, prefix, visit);
}

}  // namespace cairn

#endif  // CAIRN_COMMON_PROTO_FIELDS_H_
