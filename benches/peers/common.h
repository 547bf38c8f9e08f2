/* What the libevent and libev peers share: the clock, medians, and the pipes workload's
 * counters and read callback body (as in libevent's test/bench.c). Included by each peer's
 * C file; their headers cannot meet in one translation unit (both define EV_READ). */
#ifndef EVLOOP_PEERS_COMMON_H
#define EVLOOP_PEERS_COMMON_H
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* The rearm workload's sequence of timers to re-arm, shared with the Rust side
 * (evloop_benches::rearm_pick): a 64-bit LCG, the high bits taken modulo n. */
static uint64_t rearm_state;
static long rearm_pick(long n) {
    rearm_state = rearm_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (long)((rearm_state >> 33) % (uint64_t)n);
}

/* Timer i's timeout in the rearm workload: 10 s, 20 s, ... for i % d = 0, 1, ... */
static long rearm_secs(long i, int d) { return 10 * (i % d + 1); }

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Shared state of one pipes run: fds[2i] is read end i, fds[2i+1] its write end. */
struct pipes_state {
    int *fds;
    int n;
    long count, fired, writes;
};
static struct pipes_state ps;

static void pipes_read(int idx, int fd) {
    unsigned char ch;
    long widx = idx + 1;
    ps.count += recv(fd, &ch, 1, 0);
    if (ps.writes) {
        if (widx >= ps.n) widx -= ps.n;
        send(ps.fds[2 * widx + 1], "e", 1, 0);
        ps.writes--;
        ps.fired++;
    }
}

static void pipes_start_round(int a, int w) {
    int space = ps.n / a, i;
    ps.count = 0;
    ps.writes = w;
    ps.fired = 0;
    for (i = 0; i < a; i++) send(ps.fds[2 * (i * space) + 1], "e", 1, 0);
    ps.fired += a;
}

#endif
