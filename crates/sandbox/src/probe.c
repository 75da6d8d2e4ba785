/* A statically linked test program for the sandbox tests (crates/sandbox/src/tests.rs): each mode attempts
 * one thing an action might do, prints what happened and exits 0 only when the attempt succeeded. */
#define _GNU_SOURCE
#include <dirent.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Prints what a syscall attempt gave; 1 when the kernel said EPERM. */
static int denied(const char *name, long result) {
    if (result == -1) {
        printf("%s: %s\n", name, strerror(errno));
        return errno == EPERM;
    }
    printf("%s: ok\n", name);
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    const char *arg = argc > 2 ? argv[2] : "";
    if (!strcmp(mode, "read")) {
        FILE *f = fopen(arg, "r");
        if (!f) { fprintf(stderr, "open %s: %s\n", arg, strerror(errno)); return 1; }
        char buf[256];
        size_t n = fread(buf, 1, sizeof buf, f);
        printf("read %zu bytes\n", n);
        return 0;
    }
    if (!strcmp(mode, "write")) {
        FILE *f = fopen(arg, "w");
        if (!f) { fprintf(stderr, "create %s: %s\n", arg, strerror(errno)); return 1; }
        fputs("written in the sandbox\n", f);
        return fclose(f) ? 1 : 0;
    }
    if (!strcmp(mode, "socket")) {
        int unix_fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (unix_fd < 0) { perror("unix socket"); return 2; }
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) { perror("socket(AF_INET)"); return 1; }
        printf("got an AF_INET socket\n");
        return 0;
    }
    if (!strcmp(mode, "syscalls")) {
        /* Harmless outside a sandbox too: the mount target does not exist, the namespace is the probe's. */
        int n = 0;
        errno = 0;
        n += denied("ptrace", ptrace(PTRACE_TRACEME, 0, 0, 0));
        n += denied("mount", mount("none", "/nonexistent-rcc-probe", "tmpfs", 0, ""));
        n += denied("unshare", unshare(CLONE_NEWUSER));
        n += denied("bpf", syscall(SYS_bpf, 5 /* BPF_PROG_LOAD */, NULL, 0));
        return n == 4 ? 0 : 1;
    }
    if (!strcmp(mode, "env")) {
        for (char **e = environ; *e; e++) printf("%s\n", *e);
        return 0;
    }
    if (!strcmp(mode, "pids")) {
        printf("self %d\n", (int)getpid());
        DIR *d = opendir("/proc");
        if (!d) { perror("/proc"); return 1; }
        struct dirent *e;
        while ((e = readdir(d))) if (e->d_name[0] >= '0' && e->d_name[0] <= '9') printf("proc %s\n", e->d_name);
        return 0;
    }
    if (!strcmp(mode, "hog")) {
        for (;;) {
            char *p = malloc(1 << 20);
            if (!p) { fprintf(stderr, "malloc: %s\n", strerror(errno)); return 1; }
            memset(p, 1, 1 << 20);
        }
    }
    if (!strcmp(mode, "spin")) {
        volatile unsigned long n = 0;
        for (;;) n++;
    }
    if (!strcmp(mode, "big")) {
        FILE *f = fopen(arg, "w");
        if (!f) { fprintf(stderr, "create %s: %s\n", arg, strerror(errno)); return 1; }
        char block[4096];
        memset(block, 'x', sizeof block);
        for (int i = 0; i < 16 * 256; i++) {
            if (fwrite(block, 1, sizeof block, f) != sizeof block) { perror("write"); return 1; }
        }
        return fclose(f) ? 1 : 0;
    }
    if (!strcmp(mode, "flood")) {
        char block[4096];
        memset(block, 'y', sizeof block);
        for (;;) if (fwrite(block, 1, sizeof block, stdout) != sizeof block) return 1;
    }
    if (!strcmp(mode, "sleep")) {
        sleep(60);
        return 0;
    }
    if (!strcmp(mode, "fork")) {
        for (int i = 0; i < 32; i++) {
            pid_t pid = fork();
            if (pid < 0) { fprintf(stderr, "fork %d: %s\n", i, strerror(errno)); return 1; }
            if (pid == 0) { sleep(5); _exit(0); }
        }
        printf("forked 32\n");
        return 0;
    }
    fprintf(stderr, "unknown mode %s\n", mode);
    return 3;
}
