/* LD_PRELOAD shim: TCP_NODELAY on every accepted socket (bench/versus.py --tensorzero-nodelay).
 *
 * TensorZero's gateway leaves Nagle's algorithm on for the connections it
 * accepts, so a stream whose last small write waits for the client's ACK
 * stalls up to the delayed-ACK time. This measures it with that fixed, as
 * the target asks; it changes nothing but the socket option. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static void nodelay(int fd) {
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
}

int accept(int fd, struct sockaddr *addr, socklen_t *len) {
    static int (*real)(int, struct sockaddr *, socklen_t *);
    if (!real) real = dlsym(RTLD_NEXT, "accept");
    int got = real(fd, addr, len);
    nodelay(got);
    return got;
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    static int (*real)(int, struct sockaddr *, socklen_t *, int);
    if (!real) real = dlsym(RTLD_NEXT, "accept4");
    int got = real(fd, addr, len, flags);
    nodelay(got);
    return got;
}
