"""cuda_library: compiles .cu files with /usr/local/cuda/bin/nvcc into a cc_library.

Bazel 4.2.3 has no CUDA rules offline, so each .cu file becomes one `_nvcc_object` action that runs
`nvcc -c` into a .o, and the objects are wrapped in a cc_library together with the headers and any
plain C++ sources (.cc files in `srcs` are compiled by the ordinary C++ toolchain and may include
<cuda_runtime.h>: the library depends on @cuda//:cudart). Targets compile for Hopper (sm_90a) and
Ampere (sm_80), plus compute_90 PTX for newer cards. CUDA code compiles on the development machines
and runs only on GPU machines.

Include paths seen by nvcc: the workspace root (write includes from it, e.g.
"runtime/cuda/device_probe.h"), the output tree (generated headers), and every include path,
quote/system include path and define of `deps` (read from their CcInfo). nvcc's host compiler (gcc)
already searches /usr/include, so Debian's Abseil, protobuf etc. need no flag; Abseil 20220623 compiles
under nvcc 13 (but `status = F();` on an existing absl::Status draws a spurious warning #2810-D
"ignoring return value type with nodiscard attribute": declare a new Status instead, as
CAIRN_RETURN_IF_ERROR does). The headers of `deps` (including generated ones, e.g. .pb.h) are inputs of the nvcc
action, so Bazel builds them first and the action works sandboxed too.

Tags: every generated target carries the tag "cuda". Give the same tag to every target that depends on
a cuda_library (binaries, tests), and "gpu" as well to tests that need a device. A machine without
/usr/local/cuda then builds the rest with `--build_tag_filters=-cuda --test_tag_filters=-gpu,-cuda`
(tools/run_tests.sh and the Makefile do this by themselves); CI (no GPU) skips "gpu" tests through
.bazelrc.

Fixed here (2026-11-28): the first version ran nvcc in a genrule whose srcs listed the headers twice
(`hdrs` and a glob of the package's headers), which Bazel rejects ("Label ... is duplicated in the
'srcs' attribute"), and it did not make the headers of `deps` inputs of the nvcc step, so a .cu file
including a dependency's (or a generated) header only compiled by luck of the build order.

Example:
    cuda_library(
        name = "device_probe",
        srcs = ["device_probe.cu"],
        hdrs = ["device_probe.h"],
        deps = ["//common:status", "@system//:absl"],
    )
    cc_test(
        name = "device_probe_test",
        srcs = ["device_probe_test.cc"],
        tags = ["cuda", "gpu"],
        deps = [":device_probe", "@system//:gtest_main"],
    )
"""

NVCC = "/usr/local/cuda/bin/nvcc"

CUDA_ARCH_FLAGS = [
    "-gencode=arch=compute_90a,code=sm_90a",
    "-gencode=arch=compute_80,code=sm_80",
    "-gencode=arch=compute_90,code=compute_90",
]

def _nvcc_object_impl(ctx):
    compilation = cc_common.merge_cc_infos(
        cc_infos = [dep[CcInfo] for dep in ctx.attr.deps],
    ).compilation_context
    out = ctx.actions.declare_file(ctx.label.name + ".o")
    args = ctx.actions.args()
    args.add("-c")
    args.add("-std=c++17")
    args.add_all(["-Xcompiler", "-fPIC"])
    if ctx.var["COMPILATION_MODE"] == "dbg":
        args.add_all(["-g", "-O0"])
    else:
        args.add("-O3")
    args.add_all(CUDA_ARCH_FLAGS)
    # Workspace root and output tree first, then the deps' paths; each once, in order.
    include_dirs = {d: None for d in [".", ctx.bin_dir.path] +
                                     compilation.quote_includes.to_list() +
                                     compilation.includes.to_list()}
    args.add_all(include_dirs.keys(), format_each = "-I%s")
    args.add_all(compilation.system_includes, before_each = "-isystem")
    args.add_all(compilation.defines, format_each = "-D%s")
    args.add_all(ctx.attr.nvcc_flags)
    args.add(ctx.file.src.path)
    args.add("-o", out.path)
    ctx.actions.run(
        executable = NVCC,
        arguments = [args],
        inputs = depset([ctx.file.src] + ctx.files.hdrs, transitive = [compilation.headers]),
        outputs = [out],
        mnemonic = "NvccCompile",
        progress_message = "Compiling CUDA %s" % ctx.file.src.short_path,
        # nvcc finds its host compiler (gcc) on PATH.
        use_default_shell_env = True,
    )
    return [DefaultInfo(files = depset([out]))]

_nvcc_object = rule(
    implementation = _nvcc_object_impl,
    attrs = {
        "src": attr.label(allow_single_file = [".cu"], mandatory = True),
        "hdrs": attr.label_list(allow_files = [".h", ".cuh", ".hpp"]),
        "deps": attr.label_list(providers = [CcInfo]),
        "nvcc_flags": attr.string_list(),
    },
)

def cuda_library(name, srcs, hdrs = [], deps = [], nvcc_flags = [], tags = [], **kwargs):
    """A cc_library whose .cu sources are compiled by nvcc.

    Args:
      name: the cc_library's name.
      srcs: .cu files (compiled by nvcc), private .cuh/.h headers, and optionally .cc files (compiled
        by the C++ toolchain; .cuh files are seen by nvcc only).
      hdrs: public headers; keep CUDA headers out of them so dependents need no CUDA include path.
      deps: cc_library dependencies, visible to both nvcc and the C++ compiler.
      nvcc_flags: extra nvcc flags, e.g. ["--use_fast_math"].
      tags: added to "cuda" on every generated target.
      **kwargs: passed to the cc_library (visibility, testonly, copts, ...).
    """
    cu_srcs = [s for s in srcs if s.endswith(".cu")]
    cuh_srcs = [s for s in srcs if s.endswith(".cuh")]
    other_srcs = [s for s in srcs if not s.endswith(".cu") and not s.endswith(".cuh")]
    all_tags = tags + ([] if "cuda" in tags else ["cuda"])
    private_headers = cuh_srcs + [s for s in other_srcs if s.endswith(".h")]
    objs = []
    for src in cu_srcs:
        obj = name + "_" + src[:-len(".cu")].replace("/", "_") + "_nvcc"
        _nvcc_object(
            name = obj,
            src = src,
            hdrs = hdrs + private_headers,
            deps = deps,
            nvcc_flags = nvcc_flags,
            tags = all_tags,
            testonly = kwargs.get("testonly", False),
            visibility = ["//visibility:private"],
        )
        objs.append(":" + obj)
    native.cc_library(
        name = name,
        srcs = objs + other_srcs,
        hdrs = hdrs,
        deps = deps + ["@cuda//:cudart"],
        linkstatic = True,
        tags = all_tags,
        **kwargs
    )
