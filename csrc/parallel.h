/* Splitting an index range over worker threads (see parallel.c). The thread
 * count itself is public: vi_get_num_threads / vi_set_num_threads in varinit.h. */
#ifndef VI_PARALLEL_H
#define VI_PARALLEL_H

#include <stdint.h>
#include "varinit.h"

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

#endif /* VI_PARALLEL_H */
