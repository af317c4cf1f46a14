// The CPU emulation build of norm.cu (emulation/cuda_emulation.h is force-included).
#include "runtime/compute/cuda/norm.cu"
