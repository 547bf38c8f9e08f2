/* The pipes and timers workloads on libev, called from the Rust benches through FFI. */
#include "common.h"
#include <ev.h>

struct lev_io { ev_io io; int idx; };

static void lev_read_cb(struct ev_loop *loop, ev_io *w, int revents) {
    (void)loop; (void)revents;
    pipes_read(((struct lev_io *)w)->idx, w->fd);
}

static unsigned lev_backend(const char *method) {
    if (!strcmp(method, "epoll")) return EVBACKEND_EPOLL;
    if (!strcmp(method, "poll")) return EVBACKEND_POLL;
    if (!strcmp(method, "select")) return EVBACKEND_SELECT;
    if (!strcmp(method, "kqueue")) return EVBACKEND_KQUEUE;
    return 0;
}

int peer_pipes_libev(const char *method, int *fds, int n, int a, int w, int rounds, double *setup, double *run) {
    struct ev_loop *loop = ev_loop_new(lev_backend(method));
    struct lev_io *ios = calloc(n, sizeof *ios);
    double *su = calloc(rounds, sizeof *su), *ru = calloc(rounds, sizeof *ru);
    int i, r;
    if (!loop || ev_backend(loop) != lev_backend(method)) return -1;
    ps.fds = fds;
    ps.n = n;
    for (i = 0; i < n; i++) {
        ios[i].idx = i;
        ev_io_init(&ios[i].io, lev_read_cb, fds[2 * i], EV_READ);
        ev_io_start(loop, &ios[i].io);
    }
    for (r = 0; r < rounds; r++) {
        double t0 = now_us();
        for (i = 0; i < n; i++) {
            ev_io_stop(loop, &ios[i].io);
            ev_io_start(loop, &ios[i].io);
        }
        ev_run(loop, EVRUN_NOWAIT);
        double t1 = now_us();
        pipes_start_round(a, w);
        do ev_run(loop, EVRUN_NOWAIT); while (ps.count != ps.fired);
        double t2 = now_us();
        su[r] = t1 - t0;
        ru[r] = t2 - t1;
    }
    *setup = median(su, rounds);
    *run = median(ru, rounds);
    for (i = 0; i < n; i++) ev_io_stop(loop, &ios[i].io);
    ev_loop_destroy(loop);
    free(ios); free(su); free(ru);
    return 0;
}

static long lev_timer_count;
static void lev_timer_cb(struct ev_loop *loop, ev_timer *w, int revents) {
    (void)loop; (void)w; (void)revents;
    lev_timer_count++;
}

static double lev_deadline(long i, long k) {
    return (50000 + ((i * 7919 + k * 104729) % 200000)) / 1e6;
}

/* rearm: n persistent timeouts of d lengths, then m re-arms of random ones with
 * ev_timer_again, libev's way to restart a repeating timer. */
int peer_rearm_libev(long n, int d, long m, double *rearm_ns, long *fired) {
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    ev_timer *ts = calloc(n, sizeof *ts);
    long i, k;
    for (i = 0; i < n; i++) {
        ev_init(&ts[i], lev_timer_cb);
        ts[i].repeat = (double)rearm_secs(i, d);
        ev_timer_again(loop, &ts[i]);
    }
    rearm_state = 1;
    lev_timer_count = 0;
    double t0 = now_us();
    for (k = 0; k < m; k++) ev_timer_again(loop, &ts[rearm_pick(n)]);
    double t1 = now_us();
    ev_run(loop, EVRUN_NOWAIT);
    *rearm_ns = (t1 - t0) * 1000 / m;
    *fired = lev_timer_count;
    for (i = 0; i < n; i++) ev_timer_stop(loop, &ts[i]);
    ev_loop_destroy(loop);
    free(ts);
    return 0;
}

int peer_timers_libev(long n, int r, double *add_ns, double *rearm_ns, double *run_ms, long *fired) {
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    ev_timer *ts = calloc(n, sizeof *ts);
    long i, k;
    for (i = 0; i < n; i++) ev_init(&ts[i], lev_timer_cb);
    double t0 = now_us();
    for (i = 0; i < n; i++) { ev_timer_set(&ts[i], lev_deadline(i, 0), 0.); ev_timer_start(loop, &ts[i]); }
    double t1 = now_us();
    for (k = 1; k <= r; k++)
        for (i = 0; i < n; i++) {
            ev_timer_stop(loop, &ts[i]);
            ev_timer_set(&ts[i], lev_deadline(i, k), 0.);
            ev_timer_start(loop, &ts[i]);
        }
    double t2 = now_us();
    lev_timer_count = 0;
    ev_run(loop, 0);
    double t3 = now_us();
    *add_ns = (t1 - t0) * 1000 / n;
    *rearm_ns = r ? (t2 - t1) * 1000 / ((double)n * r) : 0;
    *run_ms = (t3 - t2) / 1000;
    *fired = lev_timer_count;
    ev_loop_destroy(loop);
    free(ts);
    return 0;
}

/* loop_count: one idle watcher counting ticks, stopping itself at the last (libuv's
 * benchmark-loop-count.c on libev). */
static long lev_ticks, lev_ticks_target;
static void lev_idle_cb(struct ev_loop *loop, ev_idle *w, int revents) {
    (void)revents;
    if (++lev_ticks == lev_ticks_target) ev_idle_stop(loop, w);
}

int peer_loop_count_libev(long ticks, double *secs) {
    struct ev_loop *loop = ev_loop_new(EVBACKEND_EPOLL);
    ev_idle idle;
    if (!loop) return -1;
    lev_ticks = 0;
    lev_ticks_target = ticks;
    ev_idle_init(&idle, lev_idle_cb);
    ev_idle_start(loop, &idle);
    double t0 = now_us();
    ev_run(loop, 0);
    double t1 = now_us();
    ev_loop_destroy(loop);
    *secs = (t1 - t0) / 1e6;
    return lev_ticks == ticks ? 0 : -1;
}
