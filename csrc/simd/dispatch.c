/* Choosing the kernel table once, on first use. */
#include "kernels.h"

const vi_kernels *vi_active_kernels(void)
{
    return &vi_kernels_scalar;
}
