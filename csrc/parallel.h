/* Splitting an index range over worker threads (see parallel.c). */
#ifndef VI_PARALLEL_H
#define VI_PARALLEL_H

#include <stdint.h>
#include "varinit.h"

/* Upper bound of the thread count; larger requests are refused by the Python
 * layer and clamped here. */
#define VI_MAX_THREADS 1024

/* Work on [begin, end); returns a vi_status. Called from worker threads: it
 * must not touch Python. */
typedef vi_status (*vi_range_fn)(void *ctx, uint64_t begin, uint64_t end);

/* Run fn over [0, n) in contiguous pieces of at least `grain` indices, on up
 * to vi_get_num_threads() threads (the caller's included), and return the
 * first non-OK status a piece returned (pieces not yet started are then
 * skipped). Fewer than two pieces, one thread, or a pool busy with another
 * caller's job: fn(ctx, 0, n) on the calling thread. Safe to call from any
 * number of threads at once and in a child after fork(). */
vi_status vi_parallel_for(uint64_t n, uint64_t grain, vi_range_fn fn, void *ctx);

/* The thread count (default: the usable cores, or VARINIT_NUM_THREADS read
 * at first use); set clamps n to [1, VI_MAX_THREADS]. */
int vi_get_num_threads(void);
void vi_set_num_threads(int n);

/* The text of VARINIT_NUM_THREADS when it was set but rejected (not an integer
 * in [1, VI_MAX_THREADS]; the default was used instead), else NULL. */
const char *vi_num_threads_env_rejected(void);

#endif /* VI_PARALLEL_H */
