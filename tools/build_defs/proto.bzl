"""cc_proto_grpc_library: protoc + grpc_cpp_plugin from Debian, run as a genrule.

Bazel's own proto rules would download protobuf; this macro uses /usr/bin/protoc (3.21) and
/usr/bin/grpc_cpp_plugin (1.51) instead and wraps the generated files in a cc_library. Import paths are
relative to the repository root (e.g. `import "proto/cairn/v1/model.proto";`).

Example:
    cc_proto_grpc_library(
        name = "model_cc_proto",
        srcs = ["model.proto"],
        grpc = False,
    )
"""

def cc_proto_grpc_library(name, srcs, deps = [], proto_deps = [], grpc = False, **kwargs):
    hdrs = []
    cc = []
    for src in srcs:
        base = src[:-len(".proto")]
        hdrs.append(base + ".pb.h")
        cc.append(base + ".pb.cc")
        if grpc:
            hdrs.append(base + ".grpc.pb.h")
            cc.append(base + ".grpc.pb.cc")
    pkg = native.package_name()
    plugin = ""
    if grpc:
        plugin = "--grpc_out=$(GENDIR) --plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin"
    native.genrule(
        name = name + "_protoc",
        srcs = srcs + proto_deps,
        outs = hdrs + cc,
        cmd = " ".join([
            "/usr/bin/protoc",
            "-I.",
            "--cpp_out=$(GENDIR)",
            plugin,
        ] + [pkg + "/" + s for s in srcs]),
    )
    native.cc_library(
        name = name,
        srcs = cc,
        hdrs = hdrs,
        deps = deps + ["@system//:protobuf"] + (["@system//:grpc"] if grpc else []),
        **kwargs
    )
