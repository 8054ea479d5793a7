/* The HTTP layer's ceiling: GET /healthz on a minimal libmicrohttpd server with an internal thread pool,
 * bound to 127.0.0.1. Answers {"status":"ok"} on the MHD thread and keeps connections alive by
 * queueing on the second handler call.
 * Usage: healthz PORT THREADS [poll|epoll]
 *   poll (default): MHD_USE_POLL_INTERNAL_THREAD, the broker's own mode (its HTTPServer cannot use
 *     epoll: MHD_quiesce_daemon aborts in 0.9.75's epoll mode, see Sources/MicroHTTP/HTTPServer.swift);
 *   epoll: MHD_USE_EPOLL_INTERNAL_THREAD, what MHD_USE_AUTO_INTERNAL_THREAD picks on Linux. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char body[] = "{\"status\":\"ok\"}";

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **state) {
    static int first;
    (void)cls; (void)version; (void)upload;
    if (*state == NULL) { *state = &first; return MHD_YES; }
    if (*upload_size != 0) { *upload_size = 0; return MHD_YES; }
    int ok = strcmp(method, "GET") == 0 && strcmp(url, "/healthz") == 0;
    struct MHD_Response *r = MHD_create_response_from_buffer(
        ok ? sizeof body - 1 : 0, ok ? (void *)body : (void *)"", MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, ok ? 200 : 404, r);
    MHD_destroy_response(r);
    return ret;
}

int main(int argc, char **argv) {
    const char *polling = argc == 4 ? argv[3] : "poll";
    int poll = strcmp(polling, "poll") == 0, epoll = strcmp(polling, "epoll") == 0;
    if ((argc != 3 && argc != 4) || !(poll || epoll)) {
        fprintf(stderr, "usage: healthz PORT THREADS [poll|epoll]\n");
        return 2;
    }
    unsigned int mode = poll ? MHD_USE_POLL_INTERNAL_THREAD : MHD_USE_EPOLL_INTERNAL_THREAD;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)atoi(argv[1]));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d = MHD_start_daemon(
        mode, (uint16_t)atoi(argv[1]), NULL, NULL, handle, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)atoi(argv[2]),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)30,
        MHD_OPTION_END);
    if (d == NULL) { fprintf(stderr, "healthz: cannot start\n"); return 1; }
    sigset_t set; int sig;
    sigemptyset(&set); sigaddset(&set, SIGTERM); sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    return 0;
}
