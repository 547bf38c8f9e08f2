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

/* The TCP workloads of libuv's benchmarks, as its test/benchmark-*.c define them, written
 * here against its public API: an echo server and a sink (tcp4_echo_server and
 * tcp_pump_server, helpers that run in a process of their own), ping_pongs (one connection
 * sending "PING\n" and waiting for its echo, for `ms`), pound (`conns` connections that
 * connect, write "QS", close on the first read and connect again, for `ms`) and pump
 * (`conns` connections each writing 8 KiB as soon as the last write finished, for `ms`). */
#include <arpa/inet.h>
#include <netinet/in.h>

static uv_loop_t *tw_loop;
static int tw_sink;
static char tw_slab[65536];

static void tw_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)h;
    (void)suggested;
    buf->base = tw_slab;
    buf->len = sizeof tw_slab;
}

typedef struct {
    uv_write_t req;
    char data[];
} tw_write_t;

static void tw_free_handle(uv_handle_t *h) { free(h); }

static void tw_echo_written(uv_write_t *req, int status) {
    (void)status;
    free(req);
}

static void tw_server_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    if (n < 0) {
        uv_close((uv_handle_t *)s, tw_free_handle);
        return;
    }
    if (n == 0 || tw_sink) return;
    tw_write_t *w = malloc(sizeof *w + (size_t)n);
    memcpy(w->data, buf->base, (size_t)n);
    uv_buf_t out = uv_buf_init(w->data, (unsigned)n);
    if (uv_write(&w->req, s, &out, 1, tw_echo_written) != 0) free(w);
}

static void tw_accept(uv_stream_t *server, int status) {
    if (status != 0) return;
    uv_tcp_t *c = malloc(sizeof *c);
    uv_tcp_init(tw_loop, c);
    if (uv_accept(server, (uv_stream_t *)c) != 0) {
        uv_close((uv_handle_t *)c, tw_free_handle);
        return;
    }
    uv_read_start((uv_stream_t *)c, tw_alloc, tw_server_read);
}

int peer_uv_server(int port, int sink) {
    struct sockaddr_in addr;
    static uv_tcp_t server;
    tw_loop = uv_default_loop();
    tw_sink = sink;
    uv_ip4_addr("127.0.0.1", port, &addr);
    uv_tcp_init(tw_loop, &server);
    if (uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0) != 0) return -1;
    if (uv_listen((uv_stream_t *)&server, 1000, tw_accept) != 0) return -1;
    uv_run(tw_loop, UV_RUN_DEFAULT);
    return 0;
}

/* ping_pongs */
static uv_tcp_t pp_tcp;
static uv_connect_t pp_conn;
static uv_write_t pp_write;
static int pp_state;
static long pp_pongs;
static uint64_t pp_start, pp_ms;

static void pp_written(uv_write_t *req, int status) { (void)req; (void)status; }

static void pp_send(void) {
    uv_buf_t b = uv_buf_init("PING\n", 5);
    uv_write(&pp_write, (uv_stream_t *)&pp_tcp, &b, 1, pp_written);
}

static void pp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    if (n < 0) {
        uv_close((uv_handle_t *)s, NULL);
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (buf->base[i] != "PING\n"[pp_state]) abort();
        pp_state = (pp_state + 1) % 5;
        if (pp_state == 0) {
            pp_pongs++;
            if (uv_now(tw_loop) - pp_start > pp_ms) {
                uv_close((uv_handle_t *)s, NULL);
                return;
            }
            pp_send();
        }
    }
}

static void pp_connected(uv_connect_t *req, int status) {
    (void)req;
    if (status != 0) abort();
    pp_send();
    uv_read_start((uv_stream_t *)&pp_tcp, tw_alloc, pp_read);
}

int peer_uv_ping_pongs(int port, long ms, long *pongs) {
    struct sockaddr_in addr;
    tw_loop = uv_default_loop();
    uv_ip4_addr("127.0.0.1", port, &addr);
    pp_state = 0;
    pp_pongs = 0;
    pp_ms = (uint64_t)ms;
    uv_update_time(tw_loop);
    pp_start = uv_now(tw_loop);
    uv_tcp_init(tw_loop, &pp_tcp);
    if (uv_tcp_connect(&pp_conn, &pp_tcp, (const struct sockaddr *)&addr, pp_connected) != 0)
        return -1;
    uv_run(tw_loop, UV_RUN_DEFAULT);
    *pongs = pp_pongs;
    return 0;
}

/* pound */
typedef struct {
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_write_t write;
} pd_conn_t;

static struct sockaddr_in pd_addr;
static long pd_closed, pd_failed;
static uint64_t pd_start, pd_ms;
static void pd_connect(pd_conn_t *c);

static void pd_closed_cb(uv_handle_t *h) {
    pd_closed++;
    if (uv_now(tw_loop) - pd_start < pd_ms) pd_connect((pd_conn_t *)h->data);
}

static void pd_written(uv_write_t *req, int status) {
    if (status != 0) {
        pd_failed++;
        uv_close((uv_handle_t *)req->handle, pd_closed_cb);
    }
}

static void pd_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    (void)buf;
    if (n == 0) return;
    if (n < 0 && n != UV_EOF) pd_failed++;
    uv_close((uv_handle_t *)s, pd_closed_cb);
}

static void pd_connected(uv_connect_t *req, int status) {
    pd_conn_t *c = req->data;
    if (status != 0) {
        pd_failed++;
        uv_close((uv_handle_t *)&c->tcp, pd_closed_cb);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, tw_alloc, pd_read);
    uv_buf_t b = uv_buf_init("QS", 2);
    uv_write(&c->write, (uv_stream_t *)&c->tcp, &b, 1, pd_written);
}

static void pd_connect(pd_conn_t *c) {
    uv_tcp_init(tw_loop, &c->tcp);
    c->tcp.data = c;
    c->conn.data = c;
    if (uv_tcp_connect(&c->conn, &c->tcp, (const struct sockaddr *)&pd_addr, pd_connected) != 0)
        abort();
}

int peer_uv_pound(int port, int conns, long ms, long *closed, long *failed, double *secs) {
    pd_conn_t *all = calloc((size_t)conns, sizeof *all);
    tw_loop = uv_default_loop();
    uv_ip4_addr("127.0.0.1", port, &pd_addr);
    pd_closed = pd_failed = 0;
    pd_ms = (uint64_t)ms;
    uv_update_time(tw_loop);
    pd_start = uv_now(tw_loop);
    double t0 = now_us();
    for (int i = 0; i < conns; i++) pd_connect(&all[i]);
    uv_run(tw_loop, UV_RUN_DEFAULT);
    *secs = (now_us() - t0) / 1e6;
    *closed = pd_closed;
    *failed = pd_failed;
    free(all);
    return 0;
}

/* pump */
typedef struct {
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_write_t write;
} pm_conn_t;

static char pm_chunk[8192];
static pm_conn_t *pm_all;
static int pm_conns, pm_connected, pm_stop;
static double pm_sent, pm_t0, pm_t1;
static uv_timer_t pm_timer;
static uint64_t pm_ms;

static void pm_write(pm_conn_t *c);

static void pm_written(uv_write_t *req, int status) {
    if (status != 0 || pm_stop) return;
    pm_sent += sizeof pm_chunk;
    pm_write((pm_conn_t *)req->data);
}

static void pm_write(pm_conn_t *c) {
    uv_buf_t b = uv_buf_init(pm_chunk, sizeof pm_chunk);
    c->write.data = c;
    uv_write(&c->write, (uv_stream_t *)&c->tcp, &b, 1, pm_written);
}

static void pm_end(uv_timer_t *t) {
    pm_t1 = now_us();
    pm_stop = 1;
    for (int i = 0; i < pm_conns; i++) uv_close((uv_handle_t *)&pm_all[i].tcp, NULL);
    uv_close((uv_handle_t *)t, NULL);
}

static void pm_connected_cb(uv_connect_t *req, int status) {
    (void)req;
    if (status != 0) abort();
    if (++pm_connected < pm_conns) return;
    pm_t0 = now_us();
    uv_timer_init(tw_loop, &pm_timer);
    uv_timer_start(&pm_timer, pm_end, pm_ms, 0);
    for (int i = 0; i < pm_conns; i++) pm_write(&pm_all[i]);
}

int peer_uv_pump(int port, int conns, long ms, double *bytes, double *secs) {
    struct sockaddr_in addr;
    tw_loop = uv_default_loop();
    uv_ip4_addr("127.0.0.1", port, &addr);
    pm_all = calloc((size_t)conns, sizeof *pm_all);
    pm_conns = conns;
    pm_connected = pm_stop = 0;
    pm_sent = 0;
    pm_ms = (uint64_t)ms;
    for (int i = 0; i < conns; i++) {
        uv_tcp_init(tw_loop, &pm_all[i].tcp);
        if (uv_tcp_connect(&pm_all[i].conn, &pm_all[i].tcp, (const struct sockaddr *)&addr,
                           pm_connected_cb) != 0)
            return -1;
    }
    uv_run(tw_loop, UV_RUN_DEFAULT);
    free(pm_all);
    *bytes = pm_sent;
    *secs = (pm_t1 - pm_t0) / 1e6;
    return 0;
}
