/* Serial stand-in for the thread pool: runs the whole range on the caller. */
#include "parallel.h"

vi_status vi_parallel_for(uint64_t n, uint64_t grain, vi_range_fn fn, void *ctx)
{
    (void)grain;
    return n ? fn(ctx, 0, n) : VI_OK;
}

int vi_get_num_threads(void) { return 1; }
void vi_set_num_threads(int n) { (void)n; }
