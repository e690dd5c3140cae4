/* readahead_driver: run a page-cache scenario on one file of this machine and report what happened.
 *
 * Usage: readahead_driver PATH NPAGES, then one op a line on stdin, one answer line each:
 *   create                        write NPAGES pages of data, fsync            -> "ok"
 *   drop                          fsync, posix_fadvise(DONTNEED) the file      -> "res RANGES" (should be empty)
 *   open                          open O_RDONLY (ra_pages copied from the bdi now) -> "ok"
 *   map [PAGE N]                  mmap the file (or N pages from PAGE) PROT_READ, MAP_SHARED,
 *                                 file page i at base + i pages, base 2 MiB aligned -> "ok"
 *   madvise PAGE NPAGES ADVICE    madvise on the mapping                       -> "ret R"
 *   fadvise PAGE NPAGES ADVICE    posix_fadvise on the fd                      -> "ret R"
 *   touch PAGE NPAGES             read one byte of each page, in order         -> "flt MIN MAJ"
 *   pread PAGE COUNT LEN          COUNT preads of LEN bytes from PAGE on, back to back -> "flt MIN MAJ"
 *   mincore                       page-cache residency once every cached page is read -> "res RANGES"
 * RANGES are page-index ranges "a-b" (b excluded) joined by ",", or "-" when nothing is resident.
 * Fault counts are getrusage(RUSAGE_SELF) deltas around the accesses alone; the pread buffer is
 * touched before, so only the file's own faults count.  Part of mmlab (mmlab/linux/readahead.py).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define PG 4096UL
static const char *path;
static size_t npages;
static int fd = -1;
static char *map;
static unsigned char *vec;
static char buf[1 << 20];

static void fail(const char *what)
{
	printf("err %s\n", what);
}

static void create(void)
{
	int w = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	if (w < 0)
		return fail("open");
	memset(buf, 0x5a, sizeof buf);
	for (size_t done = 0; done < npages * PG; done += sizeof buf) {
		size_t n = npages * PG - done < sizeof buf ? npages * PG - done : sizeof buf;
		if (write(w, buf, n) != (ssize_t)n)
			return fail("write");
	}
	fsync(w);
	close(w);
	printf("ok\n");
}

/* Residency as mincore() sees it: a page counts once its folio is uptodate (read I/O done). */
static void residency(unsigned char *v)
{
	char *m = mmap(NULL, npages * PG, PROT_READ, MAP_SHARED, fd >= 0 ? fd : open(path, O_RDONLY), 0);
	memset(v, 0, npages);
	if (m != MAP_FAILED) {
		mincore(m, npages * PG, v);
		munmap(m, npages * PG);
	}
}

static void print_ranges(const unsigned char *v)
{
	int any = 0;
	printf("res ");
	for (size_t i = 0; i < npages;) {
		if (!(v[i] & 1)) {
			i++;
			continue;
		}
		size_t j = i;
		while (j < npages && (v[j] & 1))
			j++;
		printf("%s%zu-%zu", any ? "," : "", i, j);
		any = 1;
		i = j;
	}
	printf("%s\n", any ? "" : "-");
}

/* cachestat(2) (Linux 6.5+) counts the file's pages in the page cache, uptodate or still being read. */
struct cs_range { uint64_t off, len; };
struct cs { uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted; };

static long cached_pages(void)
{
	struct cs_range r = {0, 0};
	struct cs c;
	if (syscall(451, fd, &r, &c, 0) != 0)
		return -1;
	return (long)c.nr_cache;
}

static size_t count(const unsigned char *v)
{
	size_t n = 0;
	for (size_t i = 0; i < npages; i++)
		n += v[i] & 1;
	return n;
}

/* Read I/O finishes asynchronously: wait until every cached page is uptodate (mincore sees as
 * many pages as cachestat counts), polling each millisecond for at most 5 s.  Without cachestat,
 * wait until two looks 50 ms apart agree. */
static void settled_mincore(void)
{
	struct timespec ms = {0, 1000 * 1000}, slow = {0, 50 * 1000 * 1000};
	long cached = cached_pages();
	if (cached >= 0) {
		for (int i = 0; i < 5000; i++) {
			residency(vec);
			if ((long)count(vec) >= cached_pages())
				break;
			nanosleep(&ms, NULL);
		}
	} else {
		unsigned char *prev = malloc(npages);
		residency(prev);
		for (int i = 0; i < 60; i++) {
			nanosleep(&slow, NULL);
			residency(vec);
			if (!memcmp(prev, vec, npages))
				break;
			memcpy(prev, vec, npages);
		}
		free(prev);
	}
	print_ranges(vec);
}

static void drop(void)
{
	int d = open(path, O_RDONLY);
	if (d < 0)
		return fail("open");
	fsync(d);
	posix_fadvise(d, 0, 0, POSIX_FADV_DONTNEED);
	int save = fd;
	fd = d;
	residency(vec);
	fd = save;
	close(d);
	print_ranges(vec);
}

static void touch(size_t page, size_t n)
{
	struct rusage a, b;
	volatile char *p = (volatile char *)map + page * PG;
	getrusage(RUSAGE_SELF, &a);
	for (size_t i = 0; i < n; i++)
		(void)p[i * PG];
	getrusage(RUSAGE_SELF, &b);
	printf("flt %ld %ld\n", b.ru_minflt - a.ru_minflt, b.ru_majflt - a.ru_majflt);
}

static void do_pread(size_t page, size_t count, size_t len)
{
	struct rusage a, b;
	off_t off = (off_t)(page * PG);
	if (len > sizeof buf)
		return fail("len");
	memset(buf, 0, len);
	getrusage(RUSAGE_SELF, &a);
	for (size_t i = 0; i < count; i++, off += len)
		if (pread(fd, buf, len, off) < 0)
			return fail("pread");
	getrusage(RUSAGE_SELF, &b);
	printf("flt %ld %ld\n", b.ru_minflt - a.ru_minflt, b.ru_majflt - a.ru_majflt);
}

/* Map file pages [first, first + n) so that file page i sits at base + i pages, base 2 MiB
 * aligned; returns base (so ops name file pages), or NULL. */
static char *map_aligned(size_t first, size_t n)
{
	size_t align = 2UL << 20;
	char *r = mmap(NULL, npages * PG + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r == MAP_FAILED)
		return NULL;
	char *a = (char *)(((uintptr_t)r + align - 1) & ~(align - 1));
	char *m = mmap(a + first * PG, n * PG, PROT_READ, MAP_SHARED | MAP_FIXED, fd, (off_t)(first * PG));
	return m == MAP_FAILED ? NULL : a;
}

int main(int argc, char **argv)
{
	char line[256], op[32];
	unsigned long x, y, z;
	if (argc != 3)
		return 2;
	path = argv[1];
	npages = strtoul(argv[2], NULL, 0);
	vec = malloc(npages);
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof line, stdin)) {
		if (sscanf(line, "%31s", op) != 1)
			continue;
		if (!strcmp(op, "create"))
			create();
		else if (!strcmp(op, "drop"))
			drop();
		else if (!strcmp(op, "open")) {
			fd = open(path, O_RDONLY);
			fd < 0 ? fail("open") : (void)printf("ok\n");
		} else if (!strcmp(op, "map")) {
			/* "map" the whole file, or "map PAGE N": N pages from file page PAGE, the
			 * mapping's page i being file page PAGE + i (addresses stay file-relative) */
			x = 0, y = npages;
			sscanf(line, "%*s %lu %lu", &x, &y);
			map = map_aligned(x, y);
			map ? (void)printf("ok\n") : fail("mmap");
		} else if (!strcmp(op, "madvise") && sscanf(line, "%*s %lu %lu %lu", &x, &y, &z) == 3)
			printf("ret %d\n", madvise(map + x * PG, y * PG, (int)z));
		else if (!strcmp(op, "fadvise") && sscanf(line, "%*s %lu %lu %lu", &x, &y, &z) == 3)
			printf("ret %d\n", posix_fadvise(fd, (off_t)(x * PG), (off_t)(y * PG), (int)z));
		else if (!strcmp(op, "touch") && sscanf(line, "%*s %lu %lu", &x, &y) == 2)
			touch(x, y);
		else if (!strcmp(op, "pread") && sscanf(line, "%*s %lu %lu %lu", &x, &y, &z) == 3)
			do_pread(x, y, z);
		else if (!strcmp(op, "mincore"))
			settled_mincore();
		else
			fail(op);
	}
	return 0;
}
