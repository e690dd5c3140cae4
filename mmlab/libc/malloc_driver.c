/* malloc_driver.c: replay a trace of malloc calls against the real glibc.
 *
 * mmlab's differential tests compile this file at test time (cc -O0) and run
 * it in a fresh process; mmlab.libc.malloc replays the same trace on the
 * model, and the two outputs must agree line for line.
 *
 * The heap must be pristine when the trace starts, so before the last
 * operation the driver calls nothing that could malloc: no stdio, no
 * strtol with locales, no printf.  Input is read with read(2) into a static
 * buffer and output is formatted by hand and written with write(2).
 *
 * Input: one operation per line (numbers are decimal, may be negative):
 *     m ID SIZE           p[ID] = malloc(SIZE)
 *     f ID                free(p[ID]); p[ID] = NULL
 *     F ID                free(p[ID]), keeping p[ID]: a second F is a double free
 *     g ID OFF            free(p[ID] + OFF): a pointer malloc never returned
 *     c ID N SIZE         p[ID] = calloc(N, SIZE)
 *     r ID SIZE           q = realloc(p[ID], SIZE); p[ID] = q unless q == NULL && SIZE != 0
 *     a ID ALIGN SIZE     p[ID] = memalign(ALIGN, SIZE)
 *     l ID ALIGN SIZE     p[ID] = aligned_alloc(ALIGN, SIZE)
 *     x ID ALIGN SIZE     posix_memalign(&p[ID], ALIGN, SIZE)
 *     t PAD               malloc_trim(PAD)
 *     o PARAM VALUE       mallopt(PARAM, VALUE)
 *     u ID                malloc_usable_size(p[ID])
 *     i                   mallinfo2()
 *     b INC               sbrk(INC): the program moves the break behind malloc's back
 *     B OFF LEN           mmap LEN bytes at initial break + OFF (MAP_FIXED_NOREPLACE):
 *                         a mapping in the heap's way, so brk cannot grow past it
 *     s                   malloc_stats() (to stderr; only as the last operation)
 *     P                   populate every mapping but the heap (MADV_POPULATE_READ, or
 *                         _WRITE where writable): the program's, libc's and ld.so's
 *                         pages, the stack, the driver's buffers; so that no fault of
 *                         the driver's own (code pages, lazy binding, output) lands
 *                         between two Z/z lines
 *     Z                   start counting minor faults (getrusage) from here
 *     z                   the minor faults since the last Z or z
 *     w ID LEN            write one byte to every page of [p[ID], p[ID] + LEN)
 *     W ID OFF VALUE      store the 8-byte VALUE at p[ID] + OFF (a program corrupting a header)
 *     M OFF LEN           mincore: how many pages of [initial break + OFF, + LEN) are resident
 *
 * Before the first operation the driver moves the break up to a 1 MiB
 * boundary (the model's replay does the same), so that memalign's choices,
 * which depend on the heap's address modulo the alignment, do not depend on
 * where ASLR put the heap.
 *
 * Output: a first line "start arena=N" (N is mallinfo2().arena before the
 * first operation: 0 means no heap exists yet), then one line per operation:
 *     OP ID PTR USABLE BRK        for m c r a l x u (x adds " ret=R")
 *     f ID BRK                    for free (F and g alike)
 *     t RET BRK / o RET BRK       for malloc_trim and mallopt
 *     b BRK / B RET               for sbrk, and the blocker's mmap (0, or the errno)
 *     P / Z / w ID / W ID         for populate, the fault count's start, touches and stores
 *     z N                         N minor faults
 *     M OFF N                     N resident pages (-1: not all mapped)
 *     i arena ordblks smblks hblks hblkhd fsmblks uordblks fordblks keepcost
 * where PTR is "0" for NULL, "heap+0xOFF" for an offset from the initial
 * break, or "mmap+0xOFF" for the offset of the pointer inside its own
 * mapping; BRK is the break's offset from the initial break, in hex.
 */
#include <malloc.h>
#include <stdlib.h>
#include <stdint.h>
#include <unistd.h>
#include <errno.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <fcntl.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define MAX_INPUT (1 << 24)
#define BRK_ALIGN ((uintptr_t) 1 << 20)
#define MAX_SLOTS (1 << 16)
#define OUT_SIZE (1 << 16)
#define PG ((uintptr_t) 4096)

static char input[MAX_INPUT];
static void *slots[MAX_SLOTS];
static char out[OUT_SIZE];
static size_t out_len;
static uintptr_t initial_brk;
static long fault_base;
static char maps[1 << 16];

static long minflt(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

static uintptr_t parse_hex(const char **s)
{
    uintptr_t v = 0;
    for (;;) {
        char c = **s;
        if (c >= '0' && c <= '9')
            v = v * 16 + (uintptr_t) (c - '0');
        else if (c >= 'a' && c <= 'f')
            v = v * 16 + (uintptr_t) (c - 'a' + 10);
        else
            return v;
        (*s)++;
    }
}

/* MADV_POPULATE every mapping of /proc/self/maps but the heap; errors
   (the vvar pages, PROT_NONE gaps) are ignored. */
static void populate(void)
{
    int fd = open("/proc/self/maps", O_RDONLY);
    size_t n = 0;
    ssize_t r;
    if (fd < 0)
        _exit(5);
    while ((r = read(fd, maps + n, sizeof maps - 1 - n)) > 0)
        n += (size_t) r;
    close(fd);
    maps[n] = 0;
    const char *s = maps;
    while (*s) {
        const char *line = s;
        uintptr_t start = parse_hex(&s);
        s++;
        uintptr_t end = parse_hex(&s);
        s++;
        int writable = s[1] == 'w', readable = s[0] == 'r';
        int heap = 0;
        while (*s && *s != '\n') {
            if (s[0] == '[' && s[1] == 'h')
                heap = 1;
            s++;
        }
        if (*s)
            s++;
        if (heap || !readable || line[0] == 0)
            continue;
        madvise((void *) start, end - start, writable ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
    }
}

static void flush_out(void)
{
    size_t done = 0;
    while (done < out_len) {
        ssize_t n = write(1, out + done, out_len - done);
        if (n <= 0)
            _exit(3);
        done += (size_t) n;
    }
    out_len = 0;
}

static void put_str(const char *s)
{
    while (*s) {
        if (out_len == OUT_SIZE)
            flush_out();
        out[out_len++] = *s++;
    }
}

static void put_num(uintptr_t v, int base)
{
    char buf[32];
    int i = 0;
    if (base == 16)
        put_str("0x");
    do {
        buf[i++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    while (i) {
        char c[2] = {buf[--i], 0};
        put_str(c);
    }
}

static void put_signed(intptr_t v)
{
    if (v < 0) {
        put_str("-");
        put_num((uintptr_t) -v, 10);
    } else {
        put_num((uintptr_t) v, 10);
    }
}

static void put_brk(void)
{
    put_str(" ");
    put_num((uintptr_t) sbrk(0) - initial_brk, 16);
}

/* The pointer as an offset the model can reproduce without knowing where
   the kernel placed anything: from the initial break for heap memory, from
   the start of its own mapping for an mmapped chunk. */
static void put_ptr(void *p)
{
    uintptr_t a = (uintptr_t) p;
    put_str(" ");
    if (!p) {
        put_str("0");
        return;
    }
    size_t *hdr = (size_t *) p - 2;     /* prev_size, size */
    if (hdr[1] & 2) {                   /* IS_MMAPPED: prev_size holds the lead */
        put_str("mmap+");
        put_num(a - ((uintptr_t) hdr - hdr[0]), 16);
    } else if (a >= initial_brk && a < (uintptr_t) sbrk(0)) {
        put_str("heap+");
        put_num(a - initial_brk, 16);
    } else {
        put_str("other+");      /* mmap fallback of a non-contiguous arena */
        put_num(a & 0xfff, 16);
    }
}

static const char *cursor;

static void skip_spaces(void)
{
    while (*cursor == ' ' || *cursor == '\t')
        cursor++;
}

static long long get_num(void)
{
    long long v = 0;
    int neg = 0;
    skip_spaces();
    if (*cursor == '-') {
        neg = 1;
        cursor++;
    }
    if (*cursor < '0' || *cursor > '9')
        _exit(2);
    while (*cursor >= '0' && *cursor <= '9')
        v = v * 10 + (*cursor++ - '0');
    return neg ? -v : v;
}

static size_t get_slot(void)
{
    long long id = get_num();
    if (id < 0 || id >= MAX_SLOTS)
        _exit(2);
    return (size_t) id;
}

static void put_alloc(char op, size_t id)
{
    char c[2] = {op, 0};
    put_str(c);
    put_str(" ");
    put_num(id, 10);
    put_ptr(slots[id]);
    put_str(" ");
    put_num(slots[id] ? malloc_usable_size(slots[id]) : 0, 10);
    put_brk();
}

static void put_mallinfo(void)
{
    struct mallinfo2 mi = mallinfo2();
    size_t f[] = {mi.arena, mi.ordblks, mi.smblks, mi.hblks, mi.hblkhd,
                  mi.fsmblks, mi.uordblks, mi.fordblks, mi.keepcost};
    put_str("i");
    for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) {
        put_str(" ");
        put_num(f[k], 10);
    }
}

static void run_line(void)
{
    char op = *cursor++;
    size_t id;
    long long n, size, align;
    switch (op) {
    case 'm':
        id = get_slot();
        slots[id] = malloc((size_t) get_num());
        put_alloc(op, id);
        break;
    case 'f':
        id = get_slot();
        free(slots[id]);
        slots[id] = NULL;
        put_str("f ");
        put_num(id, 10);
        put_brk();
        break;
    case 'F':
    case 'g':
        id = get_slot();
        n = op == 'g' ? get_num() : 0;
        flush_out();                    /* free may abort: keep what came before */
        free((char *) slots[id] + n);
        put_str(op == 'F' ? "F " : "g ");
        put_num(id, 10);
        put_brk();
        break;
    case 'c':
        id = get_slot();
        n = get_num();
        size = get_num();
        slots[id] = calloc((size_t) n, (size_t) size);
        put_alloc(op, id);
        break;
    case 'r': {
        id = get_slot();
        size = get_num();
        void *q = realloc(slots[id], (size_t) size);
        if (q || size == 0)
            slots[id] = q;
        put_alloc(op, id);
        break;
    }
    case 'a':
    case 'l':
        id = get_slot();
        align = get_num();
        size = get_num();
        slots[id] = op == 'a' ? memalign((size_t) align, (size_t) size)
                              : aligned_alloc((size_t) align, (size_t) size);
        put_alloc(op, id);
        break;
    case 'x': {
        id = get_slot();
        align = get_num();
        size = get_num();
        int ret = posix_memalign(&slots[id], (size_t) align, (size_t) size);
        put_alloc(op, id);
        put_str(" ret=");
        put_num((uintptr_t) ret, 10);
        break;
    }
    case 'u':
        id = get_slot();
        put_alloc(op, id);
        break;
    case 't':
        n = get_num();
        put_str("t ");
        put_num((uintptr_t) malloc_trim((size_t) n), 10);
        put_brk();
        break;
    case 'o':
        n = get_num();
        size = get_num();
        put_str("o ");
        put_signed(mallopt((int) n, (int) size));
        put_brk();
        break;
    case 'i':
        put_mallinfo();
        break;
    case 'b':
        sbrk((intptr_t) get_num());
        put_str("b");
        put_brk();
        break;
    case 'B': {
        n = get_num();
        size = get_num();
        void *want = (void *) (initial_brk + (uintptr_t) n);
        void *got = mmap(want, (size_t) size, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        put_str("B ");
        put_num(got == MAP_FAILED ? (uintptr_t) errno : got == want ? 0 : 1, 10);
        break;
    }
    case 's':
        flush_out();
        malloc_stats();
        return;
    case 'P':
        populate();
        put_str("P");
        break;
    case 'Z':
        fault_base = minflt();
        put_str("Z");
        break;
    case 'z': {
        long now = minflt();
        put_str("z ");
        put_num((uintptr_t) (now - fault_base), 10);
        fault_base = minflt();
        break;
    }
    case 'w': {
        id = get_slot();
        n = get_num();
        volatile char *q = (volatile char *) slots[id];
        for (long long k = 0; k < n; k += (long long) (PG - (((uintptr_t) q + k) & (PG - 1))))
            q[k] = 1;
        put_str("w ");
        put_num(id, 10);
        break;
    }
    case 'M': {
        static unsigned char vec[1 << 16];
        long long off = get_num();
        n = get_num();
        uintptr_t lo = (initial_brk + (uintptr_t) off) & ~(PG - 1);
        uintptr_t hi = (initial_brk + (uintptr_t) off + (uintptr_t) n + PG - 1) & ~(PG - 1);
        long count = 0;
        if (hi - lo > PG * sizeof vec || mincore((void *) lo, hi - lo, vec) != 0)
            count = -1;
        for (uintptr_t k = 0; count >= 0 && k < (hi - lo) / PG; k++)
            count += vec[k] & 1;
        put_str("M ");
        put_signed(off);
        put_str(" ");
        put_signed(count);
        break;
    }
    case 'W': {
        id = get_slot();
        n = get_num();
        size = get_num();
        flush_out();                    /* the next call may abort */
        *(volatile long long *) ((char *) slots[id] + n) = size;
        put_str("W ");
        put_num(id, 10);
        break;
    }
    default:
        _exit(2);
    }
    put_str("\n");
}

int main(void)
{
    uintptr_t brk0 = (uintptr_t) sbrk(0);
    initial_brk = (brk0 + BRK_ALIGN - 1) & ~(BRK_ALIGN - 1);
    if (initial_brk != brk0 && sbrk((intptr_t) (initial_brk - brk0)) == (void *) -1)
        _exit(4);
    size_t len = 0;
    for (;;) {
        ssize_t n = read(0, input + len, MAX_INPUT - 1 - len);
        if (n < 0)
            _exit(2);
        if (n == 0)
            break;
        len += (size_t) n;
    }
    input[len] = 0;
    /* mallinfo2 only reads the arena: it allocates nothing. */
    put_str("start arena=");
    put_num(mallinfo2().arena, 10);
    put_str("\n");
    cursor = input;
    while (*cursor) {
        while (*cursor == '\n' || *cursor == ' ')
            cursor++;
        if (!*cursor)
            break;
        run_line();
        while (*cursor && *cursor != '\n')
            cursor++;
    }
    flush_out();
    return 0;
}
