// The CPU emulation build of rope.cu (emulation/cuda_emulation.h is force-included).
#include "runtime/compute/cuda/rope.cu"
