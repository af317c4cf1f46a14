// The CPU emulation build of matmul_simple.cu (emulation/cuda_emulation.h is force-included).
#include "runtime/compute/cuda/matmul_simple.cu"
