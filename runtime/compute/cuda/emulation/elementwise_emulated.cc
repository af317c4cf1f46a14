// The CPU emulation build of elementwise.cu (emulation/cuda_emulation.h is force-included).
#include "runtime/compute/cuda/elementwise.cu"
