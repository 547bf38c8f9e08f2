/* The http-hello responder over TLS on libevent 2.1's bufferevent_openssl (OpenSSL 3), the
 * peer of evloop's https-hello in benches/https.sh: every request (ended by an empty line)
 * gets the same 13-byte response; one with "Connection: close" gets it, then the close. A standalone program, built by https.sh:
 *   https_libevent PORT CERT.pem KEY.pem
 * Exits on SIGINT or SIGTERM. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char RESPONSE[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";

/* The answer to a request that asked to close: a new connection per request. */
static const char RESPONSE_THEN_CLOSE[] = "HTTP/1.1 200 OK\r\nConnection: close\r\n"
    "Content-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";

static void event_cb(struct bufferevent *bev, short what, void *arg);

static void free_when_written(struct bufferevent *bev, void *arg) {
    (void)arg;
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) bufferevent_free(bev);
}

static void read_cb(struct bufferevent *bev, void *arg) {
    struct evbuffer *in = bufferevent_get_input(bev), *out = bufferevent_get_output(bev);
    (void)arg;
    for (;;) {
        struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
        if (end.pos < 0) break;
        struct evbuffer_ptr start;
        evbuffer_ptr_set(in, &start, 0, EVBUFFER_PTR_SET);
        struct evbuffer_ptr close =
            evbuffer_search_range(in, "Connection: close", 17, &start, &end);
        evbuffer_drain(in, end.pos + 4);
        if (close.pos >= 0) {
            evbuffer_add(out, RESPONSE_THEN_CLOSE, sizeof RESPONSE_THEN_CLOSE - 1);
            bufferevent_disable(bev, EV_READ);
            bufferevent_setcb(bev, NULL, free_when_written, event_cb, NULL);
            break;
        }
        evbuffer_add(out, RESPONSE, sizeof RESPONSE - 1);
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg) {
    (void)arg;
    if (what & BEV_EVENT_CONNECTED) return;
    bufferevent_free(bev);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg) {
    SSL_CTX *ctx = arg;
    int one = 1;
    (void)sa; (void)len;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    SSL *ssl = SSL_new(ctx);
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        evconnlistener_get_base(l), fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, read_cb, NULL, event_cb, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg) {
    (void)sig; (void)what;
    event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: https_libevent PORT CERT.pem KEY.pem\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN); /* OpenSSL writes with write(2): a reset peer must not kill us */
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (SSL_CTX_use_certificate_chain_file(ctx, argv[2]) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, argv[3], SSL_FILETYPE_PEM) != 1) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    struct event_base *base = event_base_new();
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(atoi(argv[1]));
    sin.sin_addr.s_addr = htonl(0x7f000001);
    struct evconnlistener *l = evconnlistener_new_bind(base, accept_cb, ctx,
        LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, 4096, (struct sockaddr *)&sin, sizeof sin);
    if (!l) {
        perror("listen");
        return 1;
    }
    struct event *sigint = evsignal_new(base, SIGINT, signal_cb, base);
    struct event *sigterm = evsignal_new(base, SIGTERM, signal_cb, base);
    event_add(sigint, NULL);
    event_add(sigterm, NULL);
    fprintf(stderr, "https_libevent: listening on 127.0.0.1:%s\n", argv[1]);
    event_base_dispatch(base);
    event_free(sigint);
    event_free(sigterm);
    evconnlistener_free(l);
    event_base_free(base);
    SSL_CTX_free(ctx);
    return 0;
}
