/*
 * scenario_driver.c: replays mmlab address-space scenarios against this
 * machine's kernel, for mmlab.linux.scenario.
 *
 * The driver reads every command from stdin first, then runs them and writes
 * one reply line per command (plus the VMAs of the scenario's window after
 * each operation).  It never calls malloc and never uses stdio: glibc's
 * malloc would move the program break (which brk scenarios measure) and
 * could place mappings of its own.  Its buffers are mmap'd once at start,
 * before any scenario places its window.
 *
 * Commands (numbers are decimal; offsets are relative to the window base):
 *   S m <size> <reserve>     start a scenario with a window above mmap_base,
 *                            reserved PROT_NONE if <reserve> is 1
 *   S b <size>               start a scenario whose window begins at start_brk
 *   O <slot> <oflags> <path> open a file into fd slot <slot>      -> R fd|-errno
 *   M <hasaddr> <off> <len> <prot> <flags> <slot> <offset>
 *                            mmap (slot -1: no file, -2: a bad fd) -> R addr|-errno
 *   C <nr> <off> <len> <arg> syscall nr(base+off, len, arg)        -> R 0|-errno
 *   K q | K t <rel> | K d <delta>
 *                            brk(0) | brk(base+rel) | brk(brk(0)+delta) -> R break
 *   T <off> <len> <write>    touch one byte of every page           -> R 0 | R SEGV|BUS code addr
 *   E                        end: unmap the window and every mapping made, reset brk
 * After M, C, K and T the driver prints the window's VMAs, each as
 *   V <smaps header line>
 *   F <VmFlags line>
 * and then a line ".".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define IN_MAX   (64UL << 20)
#define OUT_MAX  (1UL << 20)
#define PROC_MAX (4UL << 20)
#define MAX_SLOTS 64
#define MAX_MADE  4096
#define MARGIN   (8UL << 20)      /* free space kept on both sides of an mmap window */
#define HUGE_ALIGN (2UL << 20)

static char *in, *out, *procbuf;
static size_t in_len, out_len;
static int slots[MAX_SLOTS];
static unsigned long made_addr[MAX_MADE], made_len[MAX_MADE];
static int n_made;
static unsigned long base, size, start_brk;
static int brk_mode, skipping;

/* -- output without stdio ------------------------------------------------ */
static void flush_out(void)
{
	size_t done = 0;
	while (done < out_len) {
		ssize_t n = write(1, out + done, out_len - done);
		if (n <= 0)
			_exit(3);
		done += n;
	}
	out_len = 0;
}

static void put(const char *s, size_t n)
{
	if (out_len + n > OUT_MAX)
		flush_out();
	if (n > OUT_MAX)
		_exit(4);
	memcpy(out + out_len, s, n);
	out_len += n;
}

static void puts_(const char *s) { put(s, strlen(s)); }

static void put_hex(unsigned long v)
{
	char b[24];
	int i = sizeof(b);
	do {
		b[--i] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	put(b + i, sizeof(b) - i);
}

static void put_dec(long v)
{
	char b[24];
	int i = sizeof(b);
	unsigned long u = v < 0 ? -(unsigned long)v : (unsigned long)v;
	do {
		b[--i] = '0' + u % 10;
		u /= 10;
	} while (u);
	if (v < 0)
		b[--i] = '-';
	put(b + i, sizeof(b) - i);
}

/* -- reading /proc ------------------------------------------------------- */
static size_t read_proc(const char *path)
{
	int fd = open(path, O_RDONLY);
	size_t len = 0;
	if (fd < 0)
		_exit(5);
	for (;;) {
		ssize_t n = read(fd, procbuf + len, PROC_MAX - 1 - len);
		if (n < 0)
			_exit(6);
		if (n == 0)
			break;
		len += n;
		if (len >= PROC_MAX - 1)
			_exit(7);
	}
	close(fd);
	procbuf[len] = 0;
	return len;
}

/* start_brk is field 47 of /proc/self/stat; the second field may hold spaces. */
static unsigned long read_start_brk(void)
{
	char *p;
	int field = 2;
	read_proc("/proc/self/stat");
	p = strrchr(procbuf, ')');
	if (!p)
		_exit(8);
	p++;
	while (*p && field < 47) {
		if (*p == ' ')
			field++;
		p++;
	}
	return strtoul(p, NULL, 10);
}

/* The window for an mmap scenario: above the highest mapping below the
 * stack, which is where mmap_base lies, so that no mmap without an address
 * (ours or the C library's) can land in it. */
static unsigned long place_window(unsigned long len)
{
	unsigned long stack = 0, top = 0, s, e;
	char *line = procbuf, *next;
	read_proc("/proc/self/maps");
	for (; *line; line = next) {
		next = strchr(line, '\n');
		next = next ? next + 1 : line + strlen(line);
		if (strstr(line, "[stack]") && strstr(line, "[stack]") < next)
			stack = strtoul(line, NULL, 16);
	}
	if (!stack)
		return 0;
	for (line = procbuf; *line; line = next) {
		char *p;
		next = strchr(line, '\n');
		next = next ? next + 1 : line + strlen(line);
		s = strtoul(line, &p, 16);
		e = strtoul(p + 1, NULL, 16);
		if (s < stack && e > top)
			top = e;
	}
	s = (top + MARGIN + HUGE_ALIGN - 1) & ~(HUGE_ALIGN - 1);
	if (s + len + MARGIN + (1UL << 20) > stack || s + len < s)
		return 0;
	return s;
}

/* Does any mapping meet [s, s + len)? */
static int window_busy(unsigned long s, unsigned long len)
{
	char *line, *next, *p;
	read_proc("/proc/self/maps");
	for (line = procbuf; *line; line = next) {
		unsigned long vs, ve;
		next = strchr(line, '\n');
		next = next ? next + 1 : line + strlen(line);
		vs = strtoul(line, &p, 16);
		ve = strtoul(p + 1, NULL, 16);
		if (vs < s + len && ve > s)
			return 1;
	}
	return 0;
}

/* Print the smaps header and VmFlags line of every VMA meeting the window. */
static void dump_window(void)
{
	char *line, *next;
	int inside = 0;
	read_proc("/proc/self/smaps");
	for (line = procbuf; *line; line = next) {
		next = strchr(line, '\n');
		next = next ? next + 1 : line + strlen(line);
		if ((*line >= '0' && *line <= '9') || (*line >= 'a' && *line <= 'f')) {
			char *p;
			unsigned long s = strtoul(line, &p, 16), e;
			if (*p == '-') {
				e = strtoul(p + 1, NULL, 16);
				inside = s < base + size && e > base;
				if (inside) {
					puts_("V ");
					put(line, next - line);
				}
				continue;
			}
		}
		if (inside && !strncmp(line, "VmFlags:", 8)) {
			puts_("F ");
			put(line + 8, next - line - 8);
		}
	}
	puts_(".\n");
}

static void reply_num(long ret)
{
	puts_("R ");
	if (ret < 0)
		put_dec(ret);
	else
		put_hex(ret);
	puts_("\n");
}

/* -- touching pages ------------------------------------------------------ */
static sigjmp_buf touch_env;
static volatile int fault_sig, fault_code;
static volatile unsigned long fault_addr;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	fault_sig = sig;
	fault_code = si->si_code;
	fault_addr = (unsigned long)si->si_addr;
	siglongjmp(touch_env, 1);
}

static void touch(unsigned long addr, unsigned long len, int write)
{
	/* static, so that siglongjmp cannot leave it stale in a register */
	static volatile unsigned long a, end;
	for (a = addr, end = addr + len; a < end; a = (a & ~4095UL) + 4096) {
		if (sigsetjmp(touch_env, 1)) {
			puts_(fault_sig == SIGBUS ? "R BUS " : "R SEGV ");
			put_dec(fault_code);
			puts_(" ");
			put_hex(fault_addr);
			puts_("\n");
			return;
		}
		if (write)
			*(volatile char *)a = 0;
		else
			(void)*(volatile char *)a;
	}
	puts_("R 0\n");
}

/* -- commands ------------------------------------------------------------ */
static char *word(char **p)
{
	char *w = *p, *e;
	while (*w == ' ')
		w++;
	e = w;
	while (*e && *e != ' ' && *e != '\n')
		e++;
	*p = *e ? e + 1 : e;
	*e = 0;
	return w;
}

static long num(char **p) { return strtol(word(p), NULL, 10); }
static unsigned long unum(char **p) { return strtoul(word(p), NULL, 10); }

static void remember(unsigned long addr, unsigned long len)
{
	if (n_made < MAX_MADE) {
		made_addr[n_made] = addr;
		made_len[n_made++] = len;
	}
}

static long sys_ret(long r) { return r == -1 ? -errno : r; }

/* Put the break back at start_brk.  brk() shrinks only over a VMA it finds
 * below the old break, so if a scenario unmapped its heap, map something
 * there first for brk() to remove. */
static void reset_brk(void)
{
	unsigned long cur = syscall(SYS_brk, 0);
	if (cur == start_brk)
		return;
	if (cur > start_brk)
		mmap((void *)start_brk, ((cur + 4095) & ~4095UL) - start_brk, PROT_NONE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	syscall(SYS_brk, start_brk);
	if (syscall(SYS_brk, 0) != (long)start_brk) {
		puts_("! cannot reset the break\n");
		flush_out();
		_exit(9);
	}
}

static void cmd_start(char *p)
{
	char *mode = word(&p);
	size = unum(&p);
	n_made = 0;
	brk_mode = mode[0] == 'b';
	if (brk_mode) {
		reset_brk();
		base = start_brk;
		if (window_busy(base, size)) {
			puts_("B fail\n");
			skipping = 1;
			return;
		}
	} else {
		int reserve = num(&p);
		base = place_window(size);
		if (!base) {
			puts_("B fail\n");
			skipping = 1;
			return;
		}
		if (reserve) {
			void *r = mmap((void *)base, size, PROT_NONE,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
			if (r != (void *)base) {
				if (r != MAP_FAILED)
					munmap(r, size);
				puts_("B fail\n");
				skipping = 1;
				return;
			}
		}
	}
	puts_("B ");
	put_hex(base);
	puts_(" ");
	put_hex(start_brk);
	puts_(" ");
	put_hex(syscall(SYS_brk, 0));
	puts_("\n");
	dump_window();
}

static void cmd_end(void)
{
	int i;
	if (skipping) {
		skipping = 0;
		puts_("D\n");
		return;
	}
	if (brk_mode)
		reset_brk();
	munmap((void *)base, size);
	for (i = 0; i < n_made; i++)
		munmap((void *)made_addr[i], made_len[i]);
	n_made = 0;
	for (i = 0; i < MAX_SLOTS; i++)
		if (slots[i] >= 0) {
			close(slots[i]);
			slots[i] = -1;
		}
	puts_("D\n");
}

static void cmd_mmap(char *p)
{
	int hasaddr = num(&p);
	long off = num(&p);
	unsigned long len = unum(&p);
	int prot = num(&p), flags = num(&p), slot = num(&p);
	unsigned long offset = unum(&p);
	int fd = slot == -1 ? -1 : slot == -2 ? 1000 : slots[slot];
	long r = (long)mmap(hasaddr ? (void *)(base + off) : NULL, len, prot, flags, fd, offset);
	r = r == -1 ? -errno : r;
	if (r >= 0)
		remember(r, len);
	reply_num(r);
	dump_window();
}

static void cmd_syscall(char *p)
{
	long nr = num(&p), off = num(&p);
	unsigned long len = unum(&p), arg = unum(&p);
	reply_num(sys_ret(syscall(nr, base + off, len, arg)));
	dump_window();
}

static void cmd_brk(char *p)
{
	char *how = word(&p);
	unsigned long to = 0;
	if (how[0] == 't')
		to = base + num(&p);
	else if (how[0] == 'd')
		to = syscall(SYS_brk, 0) + num(&p);
	reply_num(syscall(SYS_brk, to));
	dump_window();
}

static void cmd_open(char *p)
{
	int slot = num(&p), flags = num(&p);
	char *path = word(&p);
	int fd = open(path, flags);
	if (slot >= 0 && slot < MAX_SLOTS)
		slots[slot] = fd;
	reply_num(fd < 0 ? -errno : fd);
}

int main(void)
{
	struct sigaction sa;
	char *line, *next;
	int i;

	in = mmap(NULL, IN_MAX, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	out = mmap(NULL, OUT_MAX, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	procbuf = mmap(NULL, PROC_MAX, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (in == MAP_FAILED || out == MAP_FAILED || procbuf == MAP_FAILED)
		return 2;
	for (i = 0; i < MAX_SLOTS; i++)
		slots[i] = -1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);

	for (;;) {
		ssize_t n = read(0, in + in_len, IN_MAX - 1 - in_len);
		if (n < 0)
			return 2;
		if (n == 0)
			break;
		in_len += n;
		if (in_len >= IN_MAX - 1)
			return 2;
	}
	in[in_len] = 0;

	start_brk = read_start_brk();
	puts_("I ");
	put_hex(start_brk);
	puts_(" ");
	put_hex(syscall(SYS_brk, 0));
	puts_("\n");

	for (line = in; *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		else
			next = line + strlen(line);
		if (skipping && line[0] != 'E')
			continue;
		switch (line[0]) {
		case 'S': cmd_start(line + 2); break;
		case 'E': cmd_end(); break;
		case 'O': cmd_open(line + 2); break;
		case 'M': cmd_mmap(line + 2); break;
		case 'C': cmd_syscall(line + 2); break;
		case 'K': cmd_brk(line + 2); break;
		case 'T': {
			char *p = line + 2;
			long off = num(&p);
			unsigned long len = unum(&p);
			int write = num(&p);
			touch(base + off, len, write);
			dump_window();
			break;
		}
		case 0: break;
		default: puts_("? unknown command\n");
		}
	}
	flush_out();
	return 0;
}
