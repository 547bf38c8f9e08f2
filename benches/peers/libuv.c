/* The loop_count and timer lateness workloads on libuv, called from the Rust benches through
 * FFI. loop_count follows libuv's test/benchmark-loop-count.c: one idle handle whose callback
 * counts ticks and stops itself at the last one. */
#include "common.h"
#include <uv.h>

static long uv_ticks, uv_ticks_target;

static void lc_idle_cb(uv_idle_t *handle) {
    if (++uv_ticks == uv_ticks_target) uv_idle_stop(handle);
}

int peer_loop_count_libuv(long ticks, double *secs) {
    uv_loop_t *loop = uv_default_loop();
    uv_idle_t idle;
    uv_ticks = 0;
    uv_ticks_target = ticks;
    uv_idle_init(loop, &idle);
    uv_idle_start(&idle, lc_idle_cb);
    double t0 = now_us();
    uv_run(loop, UV_RUN_DEFAULT);
    double t1 = now_us();
    uv_close((uv_handle_t *)&idle, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    *secs = (t1 - t0) / 1e6;
    return uv_ticks == ticks ? 0 : -1;
}

/* Lateness: a timer of period_ms re-armed from its own callback after the loop's clock is
 * refreshed; out[i] = firing time - (reading before the refresh + period), in microseconds. */
static double *lat_out, lat_armed;
static int lat_i, lat_n;
static uint64_t lat_period_ms;

static void lc_lat_cb(uv_timer_t *t) {
    lat_out[lat_i++] = now_us() - (lat_armed + lat_period_ms * 1e3);
    if (lat_i == lat_n) return;
    lat_armed = now_us();
    uv_update_time(t->loop);
    uv_timer_start(t, lc_lat_cb, lat_period_ms, 0);
}

int peer_lateness_libuv(int n, long period_us, double *out) {
    uv_loop_t *loop = uv_default_loop();
    uv_timer_t t;
    if (period_us % 1000) return -1; /* libuv counts milliseconds */
    lat_out = out;
    lat_i = 0;
    lat_n = n;
    lat_period_ms = (uint64_t)(period_us / 1000);
    uv_timer_init(loop, &t);
    lat_armed = now_us();
    uv_update_time(loop);
    uv_timer_start(&t, lc_lat_cb, lat_period_ms, 0);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    return lat_i == n ? 0 : -1;
}

/* million_async, as libuv's test/benchmark-million-async.c defines it: `n` async handles
 * (libuv's is 1,048,576), one thread sending to handles picked by a linear congruential
 * generator until a timer of `timeout_ms` fires; the timer stops and joins the sender, counts
 * the handles whose callback ran at least once, and closes everything. Reports the callbacks
 * run and the handles seen. */
#include <pthread.h>

static uv_async_t *ma_handles;
static unsigned ma_n;
static int ma_stop;
static unsigned long ma_events, ma_seen;
static pthread_t ma_sender;

static void *ma_send(void *arg) {
    unsigned g = 0;
    (void)arg;
    while (!__atomic_load_n(&ma_stop, __ATOMIC_RELAXED)) {
        g = g * 214013u + 2531011u;
        uv_async_send(&ma_handles[g % ma_n]);
    }
    return NULL;
}

static void ma_async_cb(uv_async_t *handle) {
    ma_events++;
    handle->data = handle;
}

static void ma_timer_cb(uv_timer_t *timer) {
    __atomic_store_n(&ma_stop, 1, __ATOMIC_RELAXED);
    pthread_join(ma_sender, NULL);
    for (unsigned i = 0; i < ma_n; i++) {
        if (ma_handles[i].data != NULL) ma_seen++;
        uv_close((uv_handle_t *)&ma_handles[i], NULL);
    }
    uv_close((uv_handle_t *)timer, NULL);
}

int peer_million_async_libuv(unsigned n, long timeout_ms, unsigned long *events,
                             unsigned long *seen) {
    uv_loop_t *loop = uv_default_loop();
    uv_timer_t timer;
    ma_handles = calloc(n, sizeof *ma_handles);
    if (ma_handles == NULL) return -1;
    ma_n = n;
    ma_stop = 0;
    ma_events = ma_seen = 0;
    for (unsigned i = 0; i < n; i++) {
        if (uv_async_init(loop, &ma_handles[i], ma_async_cb) != 0) return -1;
        ma_handles[i].data = NULL;
    }
    uv_timer_init(loop, &timer);
    uv_timer_start(&timer, ma_timer_cb, (uint64_t)timeout_ms, 0);
    if (pthread_create(&ma_sender, NULL, ma_send, NULL) != 0) return -1;
    uv_run(loop, UV_RUN_DEFAULT);
    free(ma_handles);
    *events = ma_events;
    *seen = ma_seen;
    return 0;
}

/* million_timers, as libuv's test/benchmark-million-timers.c defines it: `n` one-shot timers
 * (libuv's is 10,000,000), the timeout going up by 1 ms every 1,000 timers, started, run to
 * the end, then closed. Reports the seconds of each phase (init, dispatch, cleanup) and the
 * callbacks run. */
static long mt_fired, mt_closed;

static void mt_timer_cb(uv_timer_t *t) {
    (void)t;
    mt_fired++;
}

static void mt_close_cb(uv_handle_t *h) {
    (void)h;
    mt_closed++;
}

int peer_million_timers_libuv(long n, double *init, double *dispatch, double *cleanup,
                              long *fired) {
    uv_loop_t *loop = uv_default_loop();
    uv_timer_t *timers = malloc((size_t)n * sizeof *timers);
    uint64_t timeout = 0;
    if (timers == NULL) return -1;
    mt_fired = mt_closed = 0;
    double t0 = now_us();
    for (long i = 0; i < n; i++) {
        if (i % 1000 == 0) timeout++;
        if (uv_timer_init(loop, &timers[i]) != 0) return -1;
        if (uv_timer_start(&timers[i], mt_timer_cb, timeout, 0) != 0) return -1;
    }
    double t1 = now_us();
    uv_run(loop, UV_RUN_DEFAULT);
    double t2 = now_us();
    for (long i = 0; i < n; i++) uv_close((uv_handle_t *)&timers[i], mt_close_cb);
    uv_run(loop, UV_RUN_DEFAULT);
    double t3 = now_us();
    free(timers);
    *init = (t1 - t0) / 1e6;
    *dispatch = (t2 - t1) / 1e6;
    *cleanup = (t3 - t2) / 1e6;
    *fired = mt_fired;
    return mt_closed == n ? 0 : -1;
}
