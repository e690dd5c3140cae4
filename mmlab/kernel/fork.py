"""fork: a child process with a copy-on-write copy of its parent's address space.

Models kernel/fork.c (copy_process, dup_mm, dup_mmap) and mm/rmap.c's
anon_vma_fork; the page tables are copied by mm/memory.py's copy_page_range.

NOTE: a single-threaded fork: no signals, no credentials beyond uid.
glibc's malloc state lives partly in Python (mmlab.libc); p.fork()
copies it into the child after copy_process (Libc.dup_for_child).
"""
import itertools

from ..errors import oserror
from ..trace import traced, note
from .. import fs as _fs
from ..mm import vma as _vma, memory
from ..mm.vma import MM, AnonVma, VM_DONTCOPY, VM_WIPEONFORK, VM_LOCKED_MASK, VM_ACCOUNT

# mm fields the child inherits as they are (the rest is rebuilt by dup_mmap).
MM_LAYOUT = ("mmap_base", "mmap_legacy_base", "task_size", "topdown", "start_code", "end_code",
             "start_data", "end_data", "start_brk", "brk", "start_stack", "arg_start", "arg_end",
             "env_start", "env_end")


def anon_vma_fork(child, parent):
    """anon_vma_fork: the child VMA links to the parent's anon_vmas and gets one of its own.

    Pages the parent already has stay findable through the parent's
    anon_vma; pages the child creates from now on go to its own, whose
    root is the parent's root.
    """
    if parent.anon_vma is None:
        return
    av = AnonVma()
    av.root = parent.anon_vma.root
    child.anon_vma = av
    child.anon_vma_chain = list(parent.anon_vma_chain) + [av]


@traced(fmt={"oldmm": repr, "mm": repr})
def dup_mmap(mm, oldmm):
    """dup_mmap: copy every VMA (except MADV_DONTFORK ones) and the entries that need copying.

    VM_LOCKED is not inherited, VM_WIPEONFORK VMAs start empty, and each
    VM_ACCOUNT VMA is charged again to the commit count.  Returns 0 or -ENOMEM.
    """
    for name in MM_LAYOUT:
        setattr(mm, name, getattr(oldmm, name))
    mm.def_flags = 0                         # VM_INIT_DEF_MASK: mlockall(MCL_FUTURE) is not inherited
    mm.total_vm, mm.data_vm = oldmm.total_vm, oldmm.data_vm
    mm.exec_vm, mm.stack_vm = oldmm.exec_vm, oldmm.stack_vm
    mm._known_unmerged = set(oldmm._known_unmerged)
    for vma in oldmm.vma_list():
        if vma.vm_flags & VM_DONTCOPY:
            _vma.vm_stat_account(mm, vma.vm_flags, -vma.pages)
            note(oldmm, "dup_mmap: %r is MADV_DONTFORK, not copied", vma)
            continue
        if vma.vm_flags & VM_ACCOUNT and _vma.vm_enough_memory(mm, vma.pages):
            return -12
        new = vma.dup()
        new.vm_mm = mm
        new.vm_flags &= ~VM_LOCKED_MASK
        if vma.vm_file is not None:
            _fs.get_file(vma.vm_file)
        if not vma.vm_flags & VM_WIPEONFORK:
            anon_vma_fork(new, vma)
        mm.insert_vma(new)
        if vma.vm_flags & VM_WIPEONFORK:
            continue
        if memory.copy_page_range(new, vma):
            return -12
    # dup_mmap copies VMAs one for one and never merges: VMAs that differed
    # only in VM_LOCKED stay apart in the child.
    for v in mm.vma_list():
        mm.leave_unmerged(v.vm_start)
    return 0


def copy_process(parent):
    """copy_process / kernel_clone: the child Process, or OSError(ENOMEM) with nothing left behind."""
    from ..process import Process
    m = parent.machine
    pid = next(m.pid_counter) if hasattr(m, "pid_counter") else None
    if pid is None:
        m.pid_counter = itertools.count(1000)
        pid = next(m.pid_counter)
    child = Process(m, pid, parent.name, parent.uid)
    child.rlim = {r: list(v) for r, v in parent.rlim.items()}
    child.exe = parent.exe
    for attr in ("load_bias", "interp_base", "libc_base"):
        if hasattr(parent, attr):
            setattr(child, attr, getattr(parent, attr))
    child.mm = MM(m, child)
    m.processes[pid] = child
    err = dup_mmap(child.mm, parent.mm)
    if err:
        child.exit()
        raise oserror(-err, "fork")
    for fd, f in parent.fds.items():
        child.fds[fd] = _fs.get_file(f) if isinstance(f, _fs.OpenFile) else f
    return child
