// The CPU emulation build of optimizer.cu (emulation/cuda_emulation.h is force-included).
#include "runtime/compute/cuda/optimizer.cu"
