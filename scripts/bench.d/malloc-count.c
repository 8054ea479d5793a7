// Counts heap allocations of a process (LD_PRELOAD), for scripts/bench.d/request-cost.py.
// Debian 12's valgrind (3.19) crashes on Swift 6 binaries and this machine's VM exposes no
// instruction counter to perf, so the broker's own work per request is counted as heap
// allocations: as deterministic as the code path, and what most of a Swift request's
// CPU follows (retain/release, copies, bridging). On SIGUSR2 the process writes
// "<allocations> <bytes>\n" to the file named by MALLOC_COUNT_FILE.
// gcc -O2 -shared -fPIC -o malloc-count.so malloc-count.c
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static atomic_ulong allocations, bytes;

static void counted(size_t size) {
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&bytes, size, memory_order_relaxed);
}

void *malloc(size_t size) { counted(size); return __libc_malloc(size); }
void *calloc(size_t n, size_t size) { counted(n * size); return __libc_calloc(n, size); }
void *realloc(void *p, size_t size) { counted(size); return __libc_realloc(p, size); }
void *memalign(size_t alignment, size_t size) { counted(size); return __libc_memalign(alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { counted(size); return __libc_memalign(alignment, size); }
int posix_memalign(void **out, size_t alignment, size_t size) {
    counted(size);
    void *p = __libc_memalign(alignment, size);
    if (!p) return 12; // ENOMEM
    *out = p;
    return 0;
}

// Only async-signal-safe calls: the digits by hand, then open/write/close.
static size_t digits(unsigned long value, char *out) {
    char reversed[24];
    size_t n = 0;
    do { reversed[n++] = (char)('0' + value % 10); value /= 10; } while (value);
    for (size_t i = 0; i < n; i++) out[i] = reversed[n - 1 - i];
    return n;
}

static const char *report_path;

static void report(int signal) {
    (void)signal;
    if (!report_path) return;
    char line[64];
    size_t n = digits(atomic_load(&allocations), line);
    line[n++] = ' ';
    n += digits(atomic_load(&bytes), line + n);
    line[n++] = '\n';
    int fd = open(report_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return;
    if (write(fd, line, n) < 0) { /* nothing to do in a signal handler */ }
    close(fd);
}

__attribute__((constructor)) static void install(void) {
    report_path = getenv("MALLOC_COUNT_FILE");
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = report;
    action.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &action, NULL);
}
