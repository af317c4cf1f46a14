// The CPU emulation build of attention_simple.cu (emulation/cuda_emulation.h is force-included).
#include "runtime/compute/cuda/attention_simple.cu"
