/* The layout walker (fill.c), called by vi_fill in api.c. */
#ifndef VI_FILL_H
#define VI_FILL_H

#include <stdint.h>
#include "varinit.h"
#include "dist/plan.h"

/* Bytes per element of a vi_dtype; 0 for an unknown code. */
int vi_itemsize(int dtype);

/* Fill the block with the prepared distribution: checks the dtype and the
 * geometry (nothing is written when they are invalid), then runs the active
 * kernel table over the block's runs on the thread pool. */
vi_status vi_walk_fill(const vi_block *b, const vi_plan *plan, uint64_t key, uint64_t stream);

#endif /* VI_FILL_H */
