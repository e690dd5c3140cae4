"""mmlab.viz.fork and the ForkExplorer: sharing after fork, copy and reuse, fork's cost."""
import pytest

from mmlab.viz import fork as F


def test_story_starts_with_every_frame_shared_and_write_protected():
    s = F.ForkStory(n=3)
    assert s.counts() == F.Counts(3, 0, 0, 3)                        # fork copied no page
    assert s.side("parent", 0) == ("A1", "ro", b"P0")                # the parent's entry lost write
    assert s.side("child", 2) == ("A3", "ro", b"P2")                 # the child maps the same frame
    assert s.page_counts(1) == "A2 2/2"                              # refcount and mapcount 2


def test_child_write_copies_then_parent_write_reuses():
    s = F.ForkStory(n=2)
    assert s.write("child", 0) == "copy"                             # wp_page_copy: a new frame
    assert s.page_counts(0) == "A1 1/1, A3 1/1"                      # each side one frame
    assert s.write("parent", 0) == "reuse"                           # no other user: same frame
    assert s.side("parent", 0) == ("A1", "rw", b"p0")
    assert s.write("parent", 0) == "no fault"                        # writable now
    assert s.counts() == F.Counts(1, 1, 1, 3)


def test_values_diverge_after_writes():
    s = F.ForkStory(n=1)
    s.write("parent", 0, b"XY")
    assert (s.side("parent", 0)[2], s.side("child", 0)[2]) == (b"XY", b"P0")


def test_after_the_child_exits_every_parent_write_reuses():
    s = F.ForkStory(n=3)
    s.exit("child")
    assert [s.write("parent", i) for i in range(3)] == ["reuse"] * 3
    assert s.counts() == F.Counts(0, 3, 0, 3)
    s.m.check()


def test_story_refuses_bad_steps():
    s = F.ForkStory(n=2)
    with pytest.raises(ValueError):
        s.write("sibling", 0)                                        # unknown side
    with pytest.raises(ValueError):
        s.write("child", 2)                                          # page out of range
    s.exit("child")
    with pytest.raises(ValueError):
        s.write("child", 0)                                          # exited
    with pytest.raises(ValueError):
        F.ForkStory(n=0)                                             # no pages


def test_text_names_frames_and_counts():
    s = F.ForkStory(n=2)
    s.write("child", 1)
    t = s.text()
    assert "A4" not in t and "A3 rw b'c1'" in t and "A2 1/1, A3 1/1" in t
    assert t.splitlines()[-1] == "3 frames: 1 shared, 1 parent's, 1 child's"


def test_sharing_counts_table():
    s = F.ForkStory(n=4)
    s.write("child", 0)
    s.write("child", 1)
    s.write("parent", 2)
    assert F.sharing_counts(s.parent, s.child, s.addr, 4) == (1, 3, 3, 7)   # page 3 shared
    assert F.sharing_counts(s.parent, s.child, s.addr, 1) == (0, 1, 1, 2)   # page 0 alone


def test_random_schedule_exits_once_and_only_parent_after():
    sched = F.random_schedule(8, 20, seed=1, exit_at=10)
    assert sched[10] == ("child", "exit") and len(sched) == 21
    assert all(who == "parent" for who, _ in sched[11:])


def test_sharing_timeline_is_consistent():
    rows = F.sharing_timeline(n=16, steps=40, exit_at=30)
    assert rows[0]["result"] == "fork" and rows[0]["shared"] == 16
    for r in rows:
        assert r["total"] == r["shared"] + r["parent_only"] + r["child_only"]
    copies = sum(r["result"] == "copy" for r in rows)
    assert rows[-1]["total"] == 16                                   # the child's frames freed at exit
    before_exit = next(r for r in rows if r["result"] == "exit")["step"] - 1
    assert rows[before_exit]["total"] == 16 + copies                 # every copy is one more frame
    shared = [r["shared"] for r in rows]
    assert shared == sorted(shared, reverse=True)                    # sharing never comes back


def test_sharing_figure_has_title_and_labels():
    fig = F.sharing_figure(F.sharing_timeline(n=8, steps=12, exit_at=8))
    ax = fig.axes[0]
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert "the child exits" in {t.get_text() for t in ax.texts}


def test_fork_cost_counts_entries_and_tables():
    small, big = F.fork_cost((1, 8))
    assert (small.ptes, big.ptes) == (256, 2048)                     # one entry per written page
    assert big.table_pages - small.table_pages in (3, 4)             # 4 MiB more: 2 more PTE tables..
    assert small.pagetables_kb == 4 * small.table_pages
    (read,) = F.fork_cost((8,), touch="read")
    assert read.ptes == 0                                            # no anon_vma: nothing copied
    (untouched,) = F.fork_cost((8,), touch="none")
    assert (untouched.ptes, untouched.table_pages) == (0, 0)         # not even a PGD yet


def test_fork_cost_rejects_bad_arguments():
    with pytest.raises(ValueError):
        F.fork_cost((1,), touch="exec")
    with pytest.raises(ValueError):
        F.fork_cost((0,))


def test_fork_cost_figure_has_three_labelled_panels():
    fig = F.fork_cost_figure(F.fork_cost((1, 2)), host_seconds={1: 0.001, 2: 0.002})
    assert len(fig.axes) == 3
    for ax in fig.axes:
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()


def test_fork_explorer_steps():
    from mmlab.widgets.fork import ForkExplorer
    x = ForkExplorer(n=2)
    assert "2 frames: 2 shared" in x.text
    x.write("child", 1)
    assert "wp_page_copy" in x.text and "A3" in x.text
    x.buttons["parent writes"].click()                               # page 0 by default
    assert "wp_page_copy" in x.text and "A4" in x.text
    x.exit_child()
    x.write("child", 0)                                              # refused: shown, not raised
    assert "exited" in x.msg.value
    x.reset()
    assert "2 frames: 2 shared" in x.text
