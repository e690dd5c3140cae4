/* layout_probe: print this process's layout at main(), before anything allocates.
 *
 * Output, one item per line: "brk 0x..." (the raw break, syscall(SYS_brk, 0)),
 * "end 0x..." (the address of the linker's `end` symbol: the end of the bss,
 * where the kernel's elf_brk lies), "stat ..." (/proc/self/stat, whose fields
 * 45-47 are start_data, end_data and start_brk), then "maps" and the text of
 * /proc/self/maps.  No stdio and no malloc: nothing moves the break first.
 * Part of mmlab (mmlab/linux/procmaps.py compiles and runs it).
 */
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char end;

#define OUT_SIZE (1 << 15)
static char *out;               /* main's stack buffer: a static one would add a bss VMA */
static int k;

static void put(const char *s)
{
    while (*s && k < OUT_SIZE)
        out[k++] = *s++;
}

static void put_hex(unsigned long v)
{
    char digits[19];
    int n = 0;
    put("0x");
    do {
        digits[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    while (n && k < OUT_SIZE)
        out[k++] = digits[--n];
}

static void put_file(const char *path)
{
    int fd = open(path, O_RDONLY), n;
    if (fd < 0)
        return;
    while (k < OUT_SIZE && (n = read(fd, out + k, OUT_SIZE - k)) > 0)
        k += n;
    close(fd);
}

int main(void)
{
    char buf[OUT_SIZE];
    unsigned long brk = syscall(SYS_brk, 0);
    out = buf;
    put("brk ");
    put_hex(brk);
    put("\nend ");
    put_hex((unsigned long)&end);
    put("\nstat ");
    put_file("/proc/self/stat");
    put("maps\n");
    put_file("/proc/self/maps");
    return write(1, out, k) == k ? 0 : 1;
}
