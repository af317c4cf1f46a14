// The CPU emulation build of attention_flash.cu (emulation/cuda_emulation.h is force-included).
#include "runtime/compute/cuda/attention_flash.cu"
