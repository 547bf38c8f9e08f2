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
