// The CPU emulation build of cross_entropy.cu (emulation/cuda_emulation.h is force-included).
#include "runtime/compute/cuda/cross_entropy.cu"
