"""mmlab.viz.mmapkinds and MmapKindsExplorer: the four kinds of mmap after read, write and fork."""
from mmlab.viz import mmapkinds as K


def frames(shared, anon, read_first=True):
    return [(r["parent"], r["child"]) for r in K.run_kind(shared, anon, read_first)]


def test_private_anon_frames():
    # zero page, own page on write, shared after fork, a copy for the child's write
    assert frames(False, True) == [("Z", " "), ("A1", " "), ("A1", "A1"), ("A1", "A2")]


def test_private_file_frames():
    # the cache page on read, a private copy on write
    assert frames(False, False) == [("C", " "), ("A1", " "), ("A1", "A1"), ("A1", "A2")]


def test_shared_kinds_keep_the_cache_page():
    # fork copies no entries of a shared mapping: the child faults the same page in
    for anon in (True, False):
        assert frames(True, anon) == [("C", " "), ("C", " "), ("C", "-"), ("C", "C")]


def test_who_sees_the_childs_write():
    # only shared kinds let the parent see the child's write
    sees = {(s, a): K.run_kind(s, a)[-1]["sees"] for s, a in K.KINDS}
    assert sees == {(False, True): (b"P", b"C"), (True, True): (b"C", b"C"),
                    (False, False): (b"P", b"C"), (True, False): (b"C", b"C")}


def test_first_write_to_private_file_is_do_cow_fault():
    # no read first: the write fault copies the cache page in do_cow_fault, which asks shmem_fault for it
    rows = K.run_kind(False, False, read_first=False)
    assert rows[0]["step"] == "write" and rows[0]["handlers"] == ["do_cow_fault", "shmem_fault"]


def test_handlers_of_the_private_anon_steps():
    # read: do_anonymous_page; write: COW off the zero page; fork: no fault; child write: COW
    assert [r["handlers"] for r in K.run_kind(False, True)] == [["do_anonymous_page"], ["do_wp_page"],
                                                                 [], ["do_wp_page"]]


def test_kinds_table_names_every_kind():
    # one block per kind, in the 2x2 order
    text = K.kinds_table()
    assert [text.index(K.kind_name(s, a)) for s, a in K.KINDS] == sorted(
        text.index(K.kind_name(s, a)) for s, a in K.KINDS)


def test_kinds_figure_has_four_titled_panels():
    # one panel per kind, each with a title and labelled axes
    fig = K.kinds_figure()
    titles = sorted(ax.get_title() for ax in fig.axes)
    assert titles == sorted(K.kind_name(s, a) for s, a in K.KINDS)
    assert all(ax.get_xlabel() == "step" and ax.get_ylabel() == "process" for ax in fig.axes)


def test_explorer_shows_the_chosen_kind():
    # the toggles rerun the scenario; show() is the plain-call form
    from mmlab.widgets.mmapkinds import MmapKindsExplorer
    w = MmapKindsExplorer()
    assert w.text.startswith("private anonymous")
    w.sharing.value = "shared"
    assert w.text.startswith("shared anonymous")
    assert w.show(False, False, read_first=False) == K.kind_text(False, False, False)
    assert "do_cow_fault" in w.text
