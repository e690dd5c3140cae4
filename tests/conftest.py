"""Helpers every test file may use.

- `@pytest.mark.host("zoneinfo", "pagetypeinfo", x86_64=True)`: a differential
  test against this machine's kernel; it skips, saying why, when the host is
  not Linux (or not x86_64 when asked) or a probe's file cannot be read
  (mmlab.linux.skip_reason gives the reason).
- `m`, `p`: a 256 MiB machine and a process spawned on it, the scene most
  address-space tests start from (a file that wants another defines its own).
- `fenced_window(pages)`: in process `p`, the base of a free window of
  `pages` pages between two one-page shared mappings, which merge with
  nothing, so VMA tests see exactly the VMAs they make.
- `unchanged(m)`: a context manager asserting that a block leaves the
  machine exactly as it found it (for "a failed call changes nothing"):
  m.check() passes and every /proc view the model prints is the same.
"""
import contextlib

import pytest

from mmlab.linux import skip_reason

PROC_VIEWS = ("buddyinfo", "pagetypeinfo", "zoneinfo", "meminfo")


def pytest_runtest_setup(item):
    for marker in item.iter_markers("host"):
        reason = skip_reason(*marker.args, **marker.kwargs)
        if reason:
            pytest.skip(reason)


@pytest.fixture
def m():
    from mmlab import Machine
    return Machine(ram="256MiB")


@pytest.fixture
def p(m):
    return m.spawn("a.out")


@pytest.fixture
def fenced_window(p):
    """fenced_window(pages): a free window in p fenced by shared PROT_NONE pages; its base address."""
    return lambda pages: make_fenced_window(p, pages)


def make_fenced_window(p, pages):
    from mmlab.arch import PAGE_SIZE as P
    from mmlab.uapi import PROT_NONE, MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS, MAP_FIXED, MAP_NORESERVE
    base = p.mmap(0, (pages + 2) * P, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE) + P
    p.munmap(base - P, (pages + 2) * P)
    fence = MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED
    p.mmap(base - P, P, PROT_NONE, fence)
    p.mmap(base + pages * P, P, PROT_NONE, fence)
    return base


def proc_snapshot(m):
    """The model's /proc views as text, to compare before and after a call."""
    return {name: getattr(m.proc, name)() for name in PROC_VIEWS}


@pytest.fixture
def unchanged():
    """with unchanged(m), pytest.raises(ValueError): m.alloc_pages(-1)"""
    @contextlib.contextmanager
    def watch(m):
        before = proc_snapshot(m)
        yield
        m.check()
        after = proc_snapshot(m)
        for name in PROC_VIEWS:
            assert after[name] == before[name], f"/proc/{name} changed"
    return watch
