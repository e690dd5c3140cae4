/* fault_driver: run a page-fault script on this machine's kernel and report what happened.
 *
 * Reads one op a line on stdin, answers one line each on stdout:
 *   file PATH NPAGES FILL        create a file (ftruncate), FILL=1 writes every page (page cache)
 *   map ID NPAGES PROT FLAGS PATH|-   mmap at a 2 MiB aligned address        -> "map"
 *   touch ID PAGE NPAGES WRITE   access one byte a page                     -> "flt MIN MAJ" | "sig CODE PAGE"
 *   ttouch ID PAGE NPAGES WRITE  the same, timed                               -> "flt MIN MAJ SECONDS"
 *   hole ID NPAGES               munmap the NPAGES pages below the region       -> "ret N"
 *   below ID NPAGES WRITE        touch the NPAGES pages just below the region, top down (stack growth)
 *                                                                              -> "flt MIN MAJ" | "sig CODE PAGE"
 *   pfn ID PAGE                  /proc/self/pagemap of the page              -> "pfn HEX" (-1: not present)
 *   prot ID PROT | unmap ID | advise ID PAGE NPAGES ADVICE | lock ID | lockall FLAGS   -> "ret N"
 *   rss0                          remember RssAnon and RssShmem now             -> "rss0"
 *   rss                           their change since rss0, in kB               -> "rss ANON SHMEM"
 *                                 (not RssFile: the driver's own code pages, mapped by fault-around
 *                                 in windows that move with ASLR, would blur it)
 *   fork                          the following ops run in a child until "exit" -> "fork"
 *   exit                          the child ends                                -> "exit"
 * Fault counts are getrusage(RUSAGE_SELF) deltas around the accesses alone.
 * Part of mmlab (tests/test_host_faults.py); compiled with cc -O1.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG 4096UL
#define MAXID 64
static char *base[MAXID];
static size_t len[MAXID];
static sigjmp_buf jb;
static volatile int sig_code;
static volatile uintptr_t sig_addr;
static int pagemap_fd = -1;

static void on_signal(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	sig_code = (sig == SIGBUS ? 100 : 0) + si->si_code;
	sig_addr = (uintptr_t)si->si_addr;
	siglongjmp(jb, 1);
}

static char *map_aligned(size_t n, int prot, int flags, int fd)
{
	size_t align = 2UL << 20;
	char *r = mmap(NULL, n + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r == MAP_FAILED)
		return NULL;
	char *a = (char *)(((uintptr_t)r + align - 1) & ~(align - 1));
	char *m = mmap(a, n, prot, flags | MAP_FIXED, fd, 0);
	return m == MAP_FAILED ? NULL : m;
}

static void touch(int id, size_t page, size_t n, int write)
{
	struct rusage a, b;
	volatile char *p = (volatile char *)base[id] + page * PG;
	size_t i = 0;
	getrusage(RUSAGE_SELF, &a);
	if (sigsetjmp(jb, 1)) {
		printf("sig %d %ld\n", sig_code, (long)((sig_addr - (uintptr_t)base[id]) / PG));
		return;
	}
	for (i = 0; i < n; i++) {
		if (write)
			p[i * PG] = 1;
		else
			(void)p[i * PG];
	}
	getrusage(RUSAGE_SELF, &b);
	printf("flt %ld %ld\n", b.ru_minflt - a.ru_minflt, b.ru_majflt - a.ru_majflt);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* below: the pages under a MAP_GROWSDOWN region, nearest first, as a stack grows. */
static void below(int id, size_t n, int write)
{
	struct rusage a, b;
	volatile char *p = (volatile char *)base[id];
	getrusage(RUSAGE_SELF, &a);
	if (sigsetjmp(jb, 1)) {
		printf("sig %d %ld\n", sig_code, (long)(((intptr_t)sig_addr - (intptr_t)base[id]) / (long)PG));
		return;
	}
	for (size_t i = 1; i <= n; i++) {
		if (write)
			p[-(long)(i * PG)] = 1;
		else
			(void)p[-(long)(i * PG)];
	}
	getrusage(RUSAGE_SELF, &b);
	printf("flt %ld %ld\n", b.ru_minflt - a.ru_minflt, b.ru_majflt - a.ru_majflt);
}

/* ttouch: touch, also timed (for benchmarks/bench_faults.py). */
static void ttouch(int id, size_t page, size_t n, int write)
{
	struct rusage a, b;
	volatile char *p = (volatile char *)base[id] + page * PG;
	getrusage(RUSAGE_SELF, &a);
	double t0 = now();
	for (size_t i = 0; i < n; i++) {
		if (write)
			p[i * PG] = 1;
		else
			(void)p[i * PG];
	}
	double t1 = now();
	getrusage(RUSAGE_SELF, &b);
	printf("flt %ld %ld %.9f\n", b.ru_minflt - a.ru_minflt, b.ru_majflt - a.ru_majflt, t1 - t0);
}

static void pfn(int id, size_t page)
{
	uint64_t e = 0;
	off_t off = (off_t)((uintptr_t)(base[id] + page * PG) / PG * 8);
	if (pagemap_fd < 0 || pread(pagemap_fd, &e, 8, off) != 8)
		e = 0;
	if (e >> 63)
		printf("pfn %llx\n", (unsigned long long)(e & ((1ULL << 55) - 1)));
	else
		printf("pfn -1\n");
}

/* /proc/self/status's RssAnon and RssShmem in kB, read without malloc so that reading them changes nothing. */
static void rss_now(long out[2])
{
	static char buf[8192];
	static const char *keys[2] = { "RssAnon:", "RssShmem:" };
	int fd = open("/proc/self/status", O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = 0;
	for (int k = 0; k < 2; k++) {
		char *at = strstr(buf, keys[k]);
		out[k] = at ? strtol(at + strlen(keys[k]), NULL, 10) : -1;
	}
}

static long rss_base[2];

/* After fork both sides share the driver's own stack and data copy-on-write: write them
 * now, and run the code the ops use, so the first measured access does not also pay for
 * the driver's own pages. */
static void __attribute__((noinline)) warm(void)
{
	volatile char stack[64 * 1024];
	struct rusage r;
	long rss[2];
	for (size_t i = 0; i < sizeof stack; i += PG)
		stack[i] = 0;
	getrusage(RUSAGE_SELF, &r);
	rss_now(rss);           /* and the code that reads the Rss lines and prints numbers */
	static char sink[64];
	snprintf(sink, sizeof sink, "%ld %ld", r.ru_minflt, rss[0]);
	if (sigsetjmp(jb, 1))
		return;
	sig_code = 0;
	sig_addr = 0;
}

int main(void)
{
	char line[512], op[32], path[256];
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_signal;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	pagemap_fd = open("/proc/self/pagemap", O_RDONLY);
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* The whole script is read first, so that a forked child and its parent
	 * each go on from their own copy of it. */
	static char script[1 << 20];
	size_t got = fread(script, 1, sizeof script - 1, stdin);
	FILE *in = fmemopen(script, got ? got : 1, "r");
	warm();
	while (fgets(line, sizeof line, in)) {
		int id = 0, prot = 0, flags = 0, w = 0, adv = 0;
		size_t n = 0, page = 0;
		if (sscanf(line, "%31s", op) != 1)
			continue;
		if (!strcmp(op, "file")) {
			int fill = 0;
			sscanf(line, "%*s %255s %zu %d", path, &n, &fill);
			int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
			ftruncate(fd, (off_t)(n * PG));
			static char buf[4096];
			memset(buf, 7, sizeof buf);
			for (size_t i = 0; fill && i < n; i++)
				pwrite(fd, buf, PG, (off_t)(i * PG));
			close(fd);
			printf("file\n");
		} else if (!strcmp(op, "map")) {
			sscanf(line, "%*s %d %zu %d %d %255s", &id, &n, &prot, &flags, path);
			int fd = -1;
			if (strcmp(path, "-"))
				fd = open(path, (prot & PROT_WRITE) && (flags & MAP_SHARED) ? O_RDWR : O_RDONLY);
			base[id] = map_aligned(n * PG, prot, flags, fd);
			len[id] = n * PG;
			if (fd >= 0)
				close(fd);
			printf(base[id] ? "map\n" : "map failed\n");
		} else if (!strcmp(op, "touch")) {
			sscanf(line, "%*s %d %zu %zu %d", &id, &page, &n, &w);
			touch(id, page, n, w);
		} else if (!strcmp(op, "hole")) {
			sscanf(line, "%*s %d %zu", &id, &n);
			printf("ret %d\n", munmap(base[id] - n * PG, n * PG));
		} else if (!strcmp(op, "below")) {
			sscanf(line, "%*s %d %zu %d", &id, &n, &w);
			below(id, n, w);
		} else if (!strcmp(op, "ttouch")) {
			sscanf(line, "%*s %d %zu %zu %d", &id, &page, &n, &w);
			ttouch(id, page, n, w);
		} else if (!strcmp(op, "pfn")) {
			sscanf(line, "%*s %d %zu", &id, &page);
			pfn(id, page);
		} else if (!strcmp(op, "prot")) {
			sscanf(line, "%*s %d %d", &id, &prot);
			printf("ret %d\n", mprotect(base[id], len[id], prot));
		} else if (!strcmp(op, "unmap")) {
			sscanf(line, "%*s %d", &id);
			printf("ret %d\n", munmap(base[id], len[id]));
		} else if (!strcmp(op, "advise")) {
			struct rusage a, b;
			sscanf(line, "%*s %d %zu %zu %d", &id, &page, &n, &adv);
			getrusage(RUSAGE_SELF, &a);
			int r = madvise(base[id] + page * PG, n * PG, adv);
			getrusage(RUSAGE_SELF, &b);
			printf("flt %ld %ld ret %d\n", b.ru_minflt - a.ru_minflt, b.ru_majflt - a.ru_majflt, r);
		} else if (!strcmp(op, "lock")) {
			struct rusage a, b;
			sscanf(line, "%*s %d", &id);
			getrusage(RUSAGE_SELF, &a);
			int r = mlock(base[id], len[id]);
			getrusage(RUSAGE_SELF, &b);
			printf("flt %ld %ld ret %d\n", b.ru_minflt - a.ru_minflt, b.ru_majflt - a.ru_majflt, r);
		} else if (!strcmp(op, "lockall")) {
			/* no fault count: MCL_CURRENT faults in the driver's own memory too */
			sscanf(line, "%*s %d", &flags);
			printf("ret %d\n", mlockall(flags));
		} else if (!strcmp(op, "rss0")) {
			rss_now(rss_base);
			printf("rss0\n");
		} else if (!strcmp(op, "rss")) {
			long r[2];
			rss_now(r);
			printf("rss %ld %ld\n", r[0] - rss_base[0], r[1] - rss_base[1]);
		} else if (!strcmp(op, "fork")) {
			fflush(stdout);
			pid_t c = fork();
			if (c == 0) {
				/* the inherited descriptor reads the parent's pagemap: open our own */
				close(pagemap_fd);
				pagemap_fd = open("/proc/self/pagemap", O_RDONLY);
				warm();
				printf("fork\n");
				continue;
			}
			int st;
			waitpid(c, &st, 0);
			warm();
			/* the parent skips the child's ops */
			while (fgets(line, sizeof line, in) && strncmp(line, "exit", 4))
				;
		} else if (!strcmp(op, "exit")) {
			printf("exit\n");
			fflush(stdout);
			_exit(0);
		} else {
			printf("unknown %s\n", op);
		}
	}
	return 0;
}
