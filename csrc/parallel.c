/*
 * The thread pool behind vi_parallel_for (pthreads).
 *
 * Workers are started by the first call that has at least two pieces of work
 * and then sleep on a condition variable between jobs. A job is [0, n) cut
 * into contiguous chunks of at least `grain` indices; the caller and the
 * workers take chunks from an atomic counter, so a thread slowed down by
 * another process on its core does not hold the others back. Which thread
 * fills which chunk never changes a value: fill.c computes every element from
 * its index alone.
 *
 * One job at a time. A caller that finds the pool busy (another thread is in
 * the middle of a fill) runs its whole range on its own thread instead of
 * waiting: concurrent callers never wait on each other and cannot deadlock,
 * and a call from inside a job runs serially too.
 *
 * Fork: the prepare handler takes the pool's locks (so it waits for a running
 * job to finish); in the child the workers do not exist, so it forgets them
 * and starts new ones on its next large job.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "parallel.h"

/* More chunks than threads, so that a thread whose core is taken by another
 * process leaves its share to the others. */
#define VI_CHUNKS_PER_THREAD 4

typedef struct {
    pthread_t thread;
    int id;          /* 0-based; the calling thread is not a worker */
    uint64_t seen;   /* the job generation when it was started */
} vi_worker;

static vi_worker workers[VI_MAX_THREADS - 1];

static struct {
    pthread_mutex_t busy;  /* held by the caller for a whole job */
    pthread_mutex_t lock;  /* guards what follows and the two conditions */
    pthread_cond_t wake;   /* a new job, or `keep` went down */
    pthread_cond_t done;   /* the last helper finished its part */
    int started;           /* workers running (changed only with `busy` held) */
    int keep;              /* workers whose id >= keep exit */
    uint64_t generation;   /* bumped once per job */
    /* the current job; written with `lock` held before `generation` moves */
    vi_range_fn fn;
    void *ctx;
    uint64_t n, nchunks;
    int helpers;           /* workers 0 .. helpers-1 take part */
    int pending;           /* helpers not finished yet */
    atomic_uint_fast64_t next_chunk;
    atomic_int status;     /* the first non-OK status of the job */
} pool = {
    .busy = PTHREAD_MUTEX_INITIALIZER,
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
};

/* ---- configuration: read once, on first use ------------------------------ */
static pthread_once_t config_once = PTHREAD_ONCE_INIT;
static atomic_int num_threads;
static char env_rejected[64]; /* the rejected VARINIT_NUM_THREADS text, or "" */

static int usable_cores(void)
{
#ifdef __linux__
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)(n < VI_MAX_THREADS ? n : VI_MAX_THREADS) : 1;
}

/* A whole decimal integer in [1, VI_MAX_THREADS], else 0. */
static int parse_thread_count(const char *text)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end != '\0' || v < 1 || v > VI_MAX_THREADS)
        return 0;
    return (int)v;
}

static void before_fork(void);
static void after_fork_in_parent(void);
static void after_fork_in_child(void);

static void configure(void)
{
    int n = usable_cores();
    const char *env = getenv("VARINIT_NUM_THREADS");
    if (env && *env) {
        int asked = parse_thread_count(env);
        if (asked)
            n = asked;
        else
            snprintf(env_rejected, sizeof env_rejected, "%s", env);
    }
    atomic_store(&num_threads, n < VI_MAX_THREADS ? n : VI_MAX_THREADS);
    pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
}

int vi_get_num_threads(void)
{
    pthread_once(&config_once, configure);
    return atomic_load_explicit(&num_threads, memory_order_relaxed);
}

void vi_set_num_threads(int n)
{
    pthread_once(&config_once, configure);
    n = n < 1 ? 1 : n > VI_MAX_THREADS ? VI_MAX_THREADS : n;
    atomic_store_explicit(&num_threads, n, memory_order_relaxed);
}

const char *vi_num_threads_env_rejected(void)
{
    pthread_once(&config_once, configure);
    return env_rejected[0] ? env_rejected : NULL;
}

/* ---- the job --------------------------------------------------------------- */
/* Takes chunks until none is left or a chunk has failed. */
static void run_chunks(void)
{
    uint64_t base = pool.n / pool.nchunks, extra = pool.n % pool.nchunks;
    for (;;) {
        uint64_t c = atomic_fetch_add_explicit(&pool.next_chunk, 1, memory_order_relaxed);
        if (c >= pool.nchunks || atomic_load_explicit(&pool.status, memory_order_relaxed) != VI_OK)
            return;
        uint64_t begin = c * base + (c < extra ? c : extra);
        uint64_t end = begin + base + (c < extra);
        vi_status st = pool.fn(pool.ctx, begin, end);
        if (st != VI_OK) {
            int ok = VI_OK;
            atomic_compare_exchange_strong(&pool.status, &ok, (int)st);
        }
    }
}

static void *worker_main(void *arg)
{
    vi_worker *self = arg;
    uint64_t seen = self->seen;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (self->id < pool.keep && pool.generation == seen)
            pthread_cond_wait(&pool.wake, &pool.lock);
        if (self->id >= pool.keep)
            break;
        seen = pool.generation;
        if (self->id >= pool.helpers)
            continue;
        pthread_mutex_unlock(&pool.lock);
        run_chunks();
        pthread_mutex_lock(&pool.lock);
        if (--pool.pending == 0)
            pthread_cond_signal(&pool.done);
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

/* With `busy` held: make `want` workers run (fewer if the system refuses). */
static void resize(int want)
{
    pthread_mutex_lock(&pool.lock);
    pool.keep = want;
    uint64_t generation = pool.generation;
    if (want < pool.started)
        pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    for (; pool.started > want; pool.started--)
        pthread_join(workers[pool.started - 1].thread, NULL);
    if (pool.started == want)
        return;
    /* Workers block every signal, so Python's handlers always run on a thread
     * of the interpreter. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (; pool.started < want; pool.started++) {
        vi_worker *w = &workers[pool.started];
        w->id = pool.started;
        w->seen = generation;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
            break; /* run with the workers we have */
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pool.started < want) {
        pthread_mutex_lock(&pool.lock);
        pool.keep = pool.started;
        pthread_mutex_unlock(&pool.lock);
    }
}

vi_status vi_parallel_for(uint64_t n, uint64_t grain, vi_range_fn fn, void *ctx)
{
    if (n == 0)
        return VI_OK;
    uint64_t pieces = n / (grain ? grain : 1);
    int threads = vi_get_num_threads();
    if (pieces < 2 || threads < 2 || pthread_mutex_trylock(&pool.busy) != 0)
        return fn(ctx, 0, n);

    uint64_t nchunks = (uint64_t)threads * VI_CHUNKS_PER_THREAD;
    if (nchunks > pieces)
        nchunks = pieces;
    int helpers = (uint64_t)(threads - 1) < nchunks - 1 ? threads - 1 : (int)(nchunks - 1);
    /* grow to what this job needs; shrink after set_num_threads lowered the count */
    int want = pool.started;
    if (want > threads - 1)
        want = threads - 1;
    if (want < helpers)
        want = helpers;
    if (want != pool.started)
        resize(want);
    if (helpers > pool.started)
        helpers = pool.started;
    if (helpers == 0) {
        pthread_mutex_unlock(&pool.busy);
        return fn(ctx, 0, n);
    }

    pthread_mutex_lock(&pool.lock);
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n = n;
    pool.nchunks = nchunks;
    pool.helpers = helpers;
    pool.pending = helpers;
    atomic_store(&pool.next_chunk, 0);
    atomic_store(&pool.status, VI_OK);
    pool.generation++;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);

    run_chunks();

    pthread_mutex_lock(&pool.lock);
    while (pool.pending)
        pthread_cond_wait(&pool.done, &pool.lock);
    vi_status st = (vi_status)atomic_load(&pool.status);
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.busy);
    return st;
}

/* ---- fork ------------------------------------------------------------------- */
static void before_fork(void)
{
    pthread_mutex_lock(&pool.busy);
    pthread_mutex_lock(&pool.lock);
}

static void after_fork_in_parent(void)
{
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.busy);
}

/* Only the forking thread exists here: the workers' handles and any waiters
 * recorded in the conditions belong to the parent. */
static void after_fork_in_child(void)
{
    pool.started = 0;
    pool.keep = 0;
    pool.helpers = 0;
    pool.pending = 0;
    pthread_cond_init(&pool.wake, NULL);
    pthread_cond_init(&pool.done, NULL);
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.busy);
}
