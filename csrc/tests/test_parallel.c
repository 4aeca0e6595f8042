/*
 * The thread pool: every index visited exactly once in pieces of at least the
 * grain, errors returned, fills identical for every thread count, callers on
 * several threads at once, and a usable pool in a child after fork().
 * Built also with -fsanitize=thread by .ci/sanitize.sh.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>
#include "varinit.h"
#include "parallel.h"

static int failures;

static void check(int cond, const char *what, long a, long b)
{
    if (!cond && failures++ < 20)
        printf("FAIL %s (%ld, %ld)\n", what, a, b);
}

/* ---- coverage: each index counted once, pieces >= grain ---------------- */
typedef struct {
    unsigned char *hits;
    uint64_t grain, n;
    uint64_t fail_at;          /* index whose piece returns VI_ETAIL, or UINT64_MAX */
    int short_piece;           /* a piece shorter than the grain was seen */
} cover;

static vi_status mark(void *ctx, uint64_t begin, uint64_t end)
{
    cover *c = ctx;
    if (end - begin < c->grain && !(begin == 0 && end == c->n))
        c->short_piece = 1;
    for (uint64_t i = begin; i < end; i++)
        c->hits[i]++;
    return c->fail_at >= begin && c->fail_at < end ? VI_ETAIL : VI_OK;
}

static int covered_once(uint64_t n, uint64_t grain, uint64_t fail_at, vi_status *st)
{
    cover c = {calloc(n ? n : 1, 1), grain, n, fail_at, 0};
    *st = vi_parallel_for(n, grain, mark, &c);
    int ok = !c.short_piece;
    for (uint64_t i = 0; i < n; i++)
        ok &= c.hits[i] == 1 || (fail_at != UINT64_MAX && c.hits[i] <= 1);
    free(c.hits);
    return ok;
}

static void test_coverage(void)
{
    static const uint64_t sizes[] = {0, 1, 999, 1000, 1999, 2000, 2001, 4097, 100003};
    static const int counts[] = {1, 2, 3, 7};
    for (size_t t = 0; t < sizeof counts / sizeof counts[0]; t++) {
        vi_set_num_threads(counts[t]);
        check(vi_get_num_threads() == counts[t], "set/get", counts[t], vi_get_num_threads());
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            vi_status st;
            check(covered_once(sizes[s], 1000, UINT64_MAX, &st), "coverage", (long)sizes[s], counts[t]);
            check(st == VI_OK, "status", (long)sizes[s], st);
        }
        vi_status st;
        covered_once(100003, 1000, 77777, &st);
        check(st == VI_ETAIL, "error status comes back", counts[t], st);
    }
    vi_set_num_threads(0);
    check(vi_get_num_threads() == 1, "clamp low", 0, vi_get_num_threads());
    vi_set_num_threads(1 << 20);
    check(vi_get_num_threads() == VI_MAX_THREADS, "clamp high", 1 << 20, vi_get_num_threads());
}

/* ---- fills: the same bits for every thread count ----------------------- */
#define FILL_N (1u << 19) /* 8 grains: threads really start */

static void fill_normal(float *out, uint64_t stream)
{
    int64_t shape[1] = {FILL_N}, strides[1] = {4};
    vi_block b = {out, VI_F32, 1, shape, strides, NULL, NULL};
    vi_params p = {VI_NORMAL, 0.0, 1.0, 0.0, 0.0};
    check(vi_fill(&b, &p, 12345, stream) == VI_OK, "fill", (long)stream, 0);
}

static void test_fill_identical(void)
{
    float *one = malloc(FILL_N * sizeof(float)), *many = malloc(FILL_N * sizeof(float));
    vi_set_num_threads(1);
    fill_normal(one, 3);
    static const int counts[] = {2, 7};
    for (int t = 0; t < 2; t++) {
        vi_set_num_threads(counts[t]);
        memset(many, 0xff, FILL_N * sizeof(float));
        fill_normal(many, 3);
        check(memcmp(one, many, FILL_N * sizeof(float)) == 0, "bits per thread count", counts[t], 0);
    }
    free(one);
    free(many);
}

/* ---- several callers at once ------------------------------------------- */
#define CALLERS 4
#define ROUNDS 8

static void *caller(void *arg)
{
    long id = (long)arg, bad = 0;
    for (int r = 0; r < ROUNDS; r++) {
        vi_status st;
        bad += !covered_once(50000 + 1000 * (uint64_t)id, 1000, UINT64_MAX, &st) || st != VI_OK;
    }
    return (void *)bad;
}

static void test_concurrent_callers(void)
{
    pthread_t th[CALLERS];
    vi_set_num_threads(3);
    for (long k = 0; k < CALLERS; k++)
        pthread_create(&th[k], NULL, caller, (void *)k);
    for (long k = 0; k < CALLERS; k++) {
        void *bad;
        pthread_join(th[k], &bad);
        check(bad == NULL, "concurrent caller", k, (long)bad);
    }
}

/* ---- fork: the child starts its own workers ----------------------------- */
static void test_fork(void)
{
    float *parent = malloc(FILL_N * sizeof(float)), *child = malloc(FILL_N * sizeof(float));
    vi_set_num_threads(2);
    fill_normal(parent, 9); /* the parent's workers exist now */
    pid_t pid = fork();
    if (pid == 0) {
        vi_status st;
        int ok = covered_once(100003, 1000, UINT64_MAX, &st) && st == VI_OK;
        fill_normal(child, 9);
        ok &= memcmp(parent, child, FILL_N * sizeof(float)) == 0;
        _exit(ok && failures == 0 ? 0 : 1);
    }
    int status = 0;
    check(pid > 0 && waitpid(pid, &status, 0) == pid, "fork/wait", pid, 0);
    check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child fill after fork", status, 0);
    fill_normal(child, 9); /* and the parent's pool still works */
    check(memcmp(parent, child, FILL_N * sizeof(float)) == 0, "parent after fork", 0, 0);
    free(parent);
    free(child);
}

/* ---- a lower count stops the extra workers at the next large job -------- */
static int tasks_of_this_process(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void test_shrink(void)
{
    float *out = malloc(FILL_N * sizeof(float));
    vi_set_num_threads(7);
    fill_normal(out, 1);
    int before = tasks_of_this_process();
    vi_set_num_threads(2);
    fill_normal(out, 1);
    int after = tasks_of_this_process();
    if (before >= 0) /* no /proc: nothing to count; a sanitizer may add its own thread */
        check(before - after == 5, "threads after shrinking 7 -> 2", before, after);
    free(out);
}

int main(void)
{
    test_coverage();
    test_fill_identical();
    test_concurrent_callers();
    test_fork();
    test_shrink();
    printf("test_parallel: %s\n", failures ? "FAILED" : "passed");
    return failures != 0;
}
