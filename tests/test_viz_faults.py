"""mmlab.viz.faults and the FaultExplorer: traced paths, the decision tree, the table."""
import pytest

from mmlab.viz import faults as F


def test_anon_read_maps_the_zero_page_through_do_anonymous_page():
    (s,) = F.fault_case("anon private", ["read"])
    assert s.path == ["do_user_addr_fault", "handle_mm_fault", "handle_pte_fault", "do_anonymous_page"]
    assert (s.minflt, s.majflt, s.frame) == (1, 0, "zero page")


def test_anon_read_then_write_copies_in_wp_page_copy():
    r, w = F.fault_case("anon private", ["read", "write"])
    assert w.path[-2:] == ["do_wp_page", "wp_page_copy"] and (w.minflt, w.frame) == (1, "F0")


def test_second_write_takes_no_fault():
    _, again = F.fault_case("anon private", ["write", "write"])
    assert (again.path, again.minflt) == ([], 0)


def test_private_file_write_is_do_cow_fault():
    # do_cow_fault asks the file's ->fault (tmpfs: shmem_fault) for the page it copies
    (s,) = F.fault_case("file private", ["write"])
    assert s.path[-2:] == ["do_cow_fault", "shmem_fault"]


def test_shared_file_write_is_do_shared_fault():
    (s,) = F.fault_case("file shared", ["write"])
    assert s.path[-2:] == ["do_shared_fault", "shmem_fault"]


def test_shared_anon_read_ends_in_shmem_fault():
    # fault-around finds no page in a shmem hole; shmem_fault allocates one (not the zero page)
    (s,) = F.fault_case("anon shared", ["read"])
    assert s.path[-3:] == ["do_read_fault", "do_fault_around", "shmem_fault"]


def test_write_to_read_only_is_sigsegv_accerr_and_charges_nothing():
    (s,) = F.fault_case("read-only anon", ["write"])
    assert (s.path[-1], s.minflt, s.frame) == ("SIGSEGV SEGV_ACCERR", 0, "-")


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError):
        F.fault_case("heap", ["read"])                  # unknown kind
    with pytest.raises(ValueError):
        F.fault_case("anon private", ["exec"])          # unknown access


def test_tree_edges_share_prefixes():
    e = F.tree_edges({"a": ["x", "y"], "b": ["x", "z"]})
    assert e == {("x",): [("x", "y"), ("x", "z")]}


def test_fault_tree_has_title_and_labels():
    fig = F.fault_tree({"r": ["h", "a"], "w": ["h", "b", "c"]})
    ax = fig.axes[0]
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert {t.get_text() for t in ax.texts} >= {"h", "a", "b", "c", "r", "w"}


def test_fault_tree_needs_one_root():
    with pytest.raises(ValueError):
        F.fault_tree({"r": ["h"], "w": ["g"]})


def test_fault_explorer_table():
    from mmlab.widgets.faults import FaultExplorer
    x = FaultExplorer()
    assert "wp_page_copy" in x.text and "zero page" in x.text
    x.sequence.value = "write"
    assert "wp_page_copy" not in x.text and "do_anonymous_page" in x.text
