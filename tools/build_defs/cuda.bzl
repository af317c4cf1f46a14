"""cuda_library: compiles .cu files with /usr/local/cuda/bin/nvcc into a cc_library.

Bazel 4.2.3 has no CUDA rules offline, so each .cu file becomes one genrule that runs nvcc -c and the
objects are wrapped in a cc_library together with the headers. Targets compile for Hopper (sm_90a) and
Ampere (sm_80), plus PTX for newer cards. CUDA code compiles on the development machines and runs only
on GPU machines; tag tests that execute it with "gpu" so CI skips them.

Example:
    cuda_library(
        name = "device_query",
        srcs = ["device_query.cu"],
        hdrs = ["device_query.h"],
        deps = ["//common:status"],
    )
"""

NVCC = "/usr/local/cuda/bin/nvcc"

CUDA_ARCH_FLAGS = " ".join([
    "-gencode arch=compute_90a,code=sm_90a",
    "-gencode arch=compute_80,code=sm_80",
    "-gencode arch=compute_90,code=compute_90",
])

def cuda_library(name, srcs, hdrs = [], deps = [], nvcc_flags = [], **kwargs):
    objs = []
    for src in srcs:
        obj = name + "_" + src.replace("/", "_").replace(".cu", ".o")
        native.genrule(
            name = obj.replace(".o", "_nvcc"),
            srcs = [src] + hdrs + native.glob(["**/*.h", "**/*.cuh"]),
            outs = [obj],
            cmd = " ".join([
                NVCC,
                "-c",
                "-O3",
                "-std=c++17",
                "--compiler-options -fPIC",
                CUDA_ARCH_FLAGS,
                "-I.",
                "-I$(GENDIR)",
                " ".join(nvcc_flags),
                "$(location " + src + ")",
                "-o $@",
            ]),
            tags = ["cuda"],
        )
        objs.append(obj)
    native.cc_library(
        name = name,
        srcs = objs,
        hdrs = hdrs,
        deps = deps + ["@cuda//:cudart"],
        linkstatic = True,
        **kwargs
    )
