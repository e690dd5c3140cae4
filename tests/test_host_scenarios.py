"""Differential tests: the model's address space against this machine's kernel.

Each named scenario demonstrates one Linux rule (merging, splitting, errno
paths, brk limits).  The first test shows the host really behaves as the rule
says, so the scenario tests what its name claims; the second runs the same
ops on the model and asserts that nothing differs.  Then hundreds of random
scenarios (mmlab.linux.scenario.random_scenario) must agree too.

Everything skips off Linux or without a C compiler; the model half skips,
saying so, until the model has an address space (Machine.spawn).
"""
import pytest

from mmlab.linux import scenario as sc

HOST = sc.host_skip_reason()
pytestmark = [pytest.mark.host(),
              pytest.mark.skipif(HOST is not None, reason=f"host scenarios: {HOST}")]

RANDOM_SEEDS = range(300)


def needs_model(s=None):
    """Skip (saying why) when the model cannot run this scenario yet."""
    reason = sc.model_skip_reason()
    if reason:
        pytest.skip(reason)
    lacking = {op["op"] for op in (s or {}).get("ops", [])} & set(sc.MODEL_METHOD) - sc.model_capabilities()
    if lacking:
        pytest.skip(f"model has no p.{', p.'.join(sorted(lacking))} yet")


def explain(diffs):
    return "\n".join(map(str, diffs))


@pytest.fixture(scope="module")
def named_host():
    """The named scenarios on this machine's kernel, in one driver process."""
    return dict(zip(sc.NAMED, sc.run_host(list(sc.NAMED.values()))))


@pytest.fixture(scope="module")
def random_scenarios():
    """The random scenarios, using every optional op the model has by now."""
    ops = sc.BASIC_OPS | sc.model_capabilities()
    return [sc.random_scenario(seed, ops) for seed in RANDOM_SEEDS]


@pytest.fixture(scope="module")
def random_host(random_scenarios):
    return sc.run_host(random_scenarios)


# -- named scenarios: one rule each ------------------------------------------------

@pytest.fixture(scope="module")
def host_facts():
    return sc.host_facts()


def needs_facts(s, facts):
    """Skip a rule this host cannot show (another filesystem, huge pages reserved)."""
    reason = sc.unmet_requirements(s, facts)
    if reason:
        pytest.skip(f"{s['name']}: {reason}")


@pytest.mark.parametrize("name", sc.NAMED)
def test_host_follows_rule(name, named_host, host_facts):
    s, rep = sc.NAMED[name], named_host[name]
    needs_facts(s, host_facts)
    for i, (ret, shape, *flags) in s["expect"].items():
        got = (rep.steps[i].ret, sc.shape(rep.steps[i].vmas))
        assert got == (ret, shape), f"{name}: op {i} {sc.describe(s['ops'][i])}"
        if flags:
            assert [v.flags for v in rep.steps[i].vmas] == flags[0], f"{name}: op {i} VmFlags"


@pytest.mark.parametrize("name", sc.NAMED)
def test_model_follows_rule(name, named_host, host_facts):
    s = sc.NAMED[name]
    needs_facts(s, host_facts)
    needs_model(s)
    diffs = sc.compare(named_host[name], sc.run_model(s))
    assert not diffs, f"{name} ({s['rule']}; {s['kernel']}):\n{explain(diffs)}"


def test_host_mprotect_accounting_rule(named_host):
    # mprotect_fixup: read-only before any fault drops VM_ACCOUNT; writable again charges it back
    steps = named_host["mprotect unaccounts untouched memory"].steps
    assert [v.flags for st in steps for v in st.vmas] == ["rd wr mr mw me ac", "rd mr mw me", "rd wr mr mw me ac"]


def test_host_madvise_flag_shows_in_vmflags(named_host):
    # MADV_DONTFORK sets VM_DONTCOPY ("dc") on the middle third only
    vmas = named_host["madvise split and merge back"].steps[1].vmas
    assert [v.flags for v in vmas] == ["rd wr mr mw me ac", "rd wr mr mw me dc ac", "rd wr mr mw me ac"]


# -- random scenarios ----------------------------------------------------------------

def test_random_scenarios_run_on_host(random_scenarios, random_host):
    # structural facts about every state the host reported: sorted, disjoint, page-aligned VMAs
    assert len(random_host) == len(random_scenarios)
    for s, rep in zip(random_scenarios, random_host):
        assert len(rep.steps) == len(s["ops"]), s["name"]
        for step in [sc.Step(None, rep.setup)] + rep.steps:
            edges = [x for v in step.vmas for x in (v.start, v.end)]
            assert edges == sorted(edges) and all(x % sc.P == 0 for x in edges), s["name"]
            assert all(v.start < v.end and len(v.perms) == 4 for v in step.vmas), s["name"]


@pytest.mark.parametrize("seed", RANDOM_SEEDS)
def test_random_scenario_agrees(seed, random_scenarios, random_host):
    needs_model()
    s = random_scenarios[seed]
    model = sc.run_model(s)
    diffs = sc.compare(random_host[seed], model)
    assert not diffs, f"{s['name']}:\n{explain(diffs[:3])}\n\n{sc.side_by_side(s, random_host[seed], model)}"
