/* The pipes and timers workloads on libevent, called from the Rust benches through FFI. */
#include "common.h"
#include <event2/event.h>

static void le_read_cb(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    pipes_read((int)(intptr_t)arg, fd);
}

static struct event_base *le_base(const char *method) {
    struct event_config *cfg = event_config_new();
    const char *all[] = {"epoll", "poll", "select", "kqueue", "devpoll", "evport"};
    unsigned i;
    for (i = 0; i < sizeof all / sizeof *all; i++)
        if (strcmp(all[i], method)) event_config_avoid_method(cfg, all[i]);
    struct event_base *b = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return b;
}

int peer_pipes_libevent(const char *method, int *fds, int n, int a, int w, int rounds, double *setup, double *run) {
    struct event_base *base = le_base(method);
    struct event **evs = calloc(n, sizeof *evs);
    double *su = calloc(rounds, sizeof *su), *ru = calloc(rounds, sizeof *ru);
    int i, r;
    if (!base) return -1;
    if (strcmp(event_base_get_method(base), method)) { event_base_free(base); return -1; }
    ps.fds = fds;
    ps.n = n;
    for (i = 0; i < n; i++) {
        evs[i] = event_new(base, fds[2 * i], EV_READ | EV_PERSIST, le_read_cb, (void *)(intptr_t)i);
        event_add(evs[i], NULL);
    }
    for (r = 0; r < rounds; r++) {
        double t0 = now_us();
        for (i = 0; i < n; i++) {
            event_del(evs[i]);
            event_add(evs[i], NULL);
        }
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        double t1 = now_us();
        pipes_start_round(a, w);
        do event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK); while (ps.count != ps.fired);
        double t2 = now_us();
        su[r] = t1 - t0;
        ru[r] = t2 - t1;
    }
    *setup = median(su, rounds);
    *run = median(ru, rounds);
    for (i = 0; i < n; i++) event_free(evs[i]);
    event_base_free(base);
    free(evs); free(su); free(ru);
    return 0;
}

static long le_timer_count;
static void le_timer_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what; (void)arg;
    le_timer_count++;
}

static void deadline(long i, long k, struct timeval *tv) {
    long us = 50000 + ((i * 7919 + k * 104729) % 200000);
    tv->tv_sec = us / 1000000;
    tv->tv_usec = us % 1000000;
}

/* rearm: n persistent timeouts of d lengths, each length a common timeout
 * (event_base_init_common_timeout), then m re-arms of random ones with event_add. */
int peer_rearm_libevent(long n, int d, long m, double *rearm_ns, long *fired) {
    struct event_base *base = event_base_new();
    struct event **evs = calloc(n, sizeof *evs);
    const struct timeval **common = calloc(d, sizeof *common);
    long i, k;
    int j;
    for (j = 0; j < d; j++) {
        struct timeval tv = { rearm_secs(j, d), 0 };
        common[j] = event_base_init_common_timeout(base, &tv);
    }
    for (i = 0; i < n; i++) {
        evs[i] = event_new(base, -1, EV_PERSIST, le_timer_cb, NULL);
        event_add(evs[i], common[i % d]);
    }
    rearm_state = 1;
    le_timer_count = 0;
    double t0 = now_us();
    for (k = 0; k < m; k++) {
        long x = rearm_pick(n);
        event_add(evs[x], common[x % d]);
    }
    double t1 = now_us();
    event_base_loop(base, EVLOOP_NONBLOCK);
    *rearm_ns = (t1 - t0) * 1000 / m;
    *fired = le_timer_count;
    for (i = 0; i < n; i++) event_free(evs[i]);
    event_base_free(base);
    free(evs);
    free(common);
    return 0;
}

int peer_timers_libevent(long n, int r, double *add_ns, double *rearm_ns, double *run_ms, long *fired) {
    struct event_base *base = event_base_new();
    struct event **evs = calloc(n, sizeof *evs);
    struct timeval tv;
    long i, k;
    for (i = 0; i < n; i++) evs[i] = event_new(base, -1, 0, le_timer_cb, NULL);
    double t0 = now_us();
    for (i = 0; i < n; i++) { deadline(i, 0, &tv); event_add(evs[i], &tv); }
    double t1 = now_us();
    for (k = 1; k <= r; k++)
        for (i = 0; i < n; i++) { deadline(i, k, &tv); event_add(evs[i], &tv); }
    double t2 = now_us();
    le_timer_count = 0;
    event_base_dispatch(base);
    double t3 = now_us();
    *add_ns = (t1 - t0) * 1000 / n;
    *rearm_ns = r ? (t2 - t1) * 1000 / ((double)n * r) : 0;
    *run_ms = (t3 - t2) / 1000;
    *fired = le_timer_count;
    for (i = 0; i < n; i++) event_free(evs[i]);
    event_base_free(base);
    free(evs);
    return 0;
}

/* The http-hello responder on libevent's bufferevent, for the HTTP load comparison: every
 * request (ended by an empty line) gets the same 13-byte response as evloop's example. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>

static const char HTTP_RESPONSE[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";

static void http_read_cb(struct bufferevent *bev, void *arg) {
    struct evbuffer *in = bufferevent_get_input(bev), *out = bufferevent_get_output(bev);
    struct evbuffer_ptr end;
    (void)arg;
    for (;;) {
        end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
        if (end.pos < 0) break;
        evbuffer_drain(in, end.pos + 4);
        evbuffer_add(out, HTTP_RESPONSE, sizeof HTTP_RESPONSE - 1);
    }
}

static void http_event_cb(struct bufferevent *bev, short what, void *arg) {
    (void)what; (void)arg;
    bufferevent_free(bev);
}

static void http_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg) {
    struct event_base *base = arg;
    int one = 1;
    (void)l; (void)sa; (void)len;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, http_read_cb, NULL, http_event_cb, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void http_signal_cb(evutil_socket_t sig, short what, void *arg) {
    (void)sig; (void)what;
    event_base_loopexit(arg, NULL);
}

int peer_http_libevent(int port) {
    struct event_base *base = event_base_new();
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(0x7f000001);
    struct evconnlistener *l = evconnlistener_new_bind(base, http_accept_cb, base,
        LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, 4096, (struct sockaddr *)&sin, sizeof sin);
    if (!l) return -1;
    struct event *sigint = evsignal_new(base, SIGINT, http_signal_cb, base);
    struct event *sigterm = evsignal_new(base, SIGTERM, http_signal_cb, base);
    event_add(sigint, NULL);
    event_add(sigterm, NULL);
    event_base_dispatch(base);
    event_free(sigint);
    event_free(sigterm);
    evconnlistener_free(l);
    event_base_free(base);
    return 0;
}

/* Lateness: a timer of period_us re-armed from its own callback after the base's cached
 * time is refreshed; out[i] = firing time - (reading before the refresh + period), in
 * microseconds. precise: EVENT_BASE_FLAG_PRECISE_TIMER. */
struct le_lat { struct event *ev; struct event_base *base; double *out, armed; int i, n; long period_us; };

static void le_lat_cb(evutil_socket_t fd, short what, void *arg) {
    struct le_lat *l = arg;
    struct timeval tv;
    (void)fd; (void)what;
    l->out[l->i++] = now_us() - (l->armed + l->period_us);
    if (l->i == l->n) return;
    l->armed = now_us();
    event_base_update_cache_time(l->base);
    tv.tv_sec = l->period_us / 1000000;
    tv.tv_usec = l->period_us % 1000000;
    evtimer_add(l->ev, &tv);
}

int peer_lateness_libevent(int precise, int n, long period_us, double *out) {
    struct event_config *cfg = event_config_new();
    struct le_lat l;
    struct timeval tv;
    event_config_require_features(cfg, 0);
    event_config_avoid_method(cfg, "poll");
    event_config_avoid_method(cfg, "select");
    if (precise) event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    l.base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (!l.base) return -1;
    l.out = out; l.i = 0; l.n = n; l.period_us = period_us;
    l.ev = evtimer_new(l.base, le_lat_cb, &l);
    tv.tv_sec = period_us / 1000000;
    tv.tv_usec = period_us % 1000000;
    l.armed = now_us();
    event_base_update_cache_time(l.base);
    evtimer_add(l.ev, &tv);
    event_base_dispatch(l.base);
    event_free(l.ev);
    event_base_free(l.base);
    return l.i == n ? 0 : -1;
}
