// The CPU emulation build of embedding.cu (emulation/cuda_emulation.h is force-included).
#include "runtime/compute/cuda/embedding.cu"
