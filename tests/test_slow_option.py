"""The `--run-slow` option of tests/conftest.py: slow tests skip without it."""

import pytest

from tests import conftest


class _Item:
    def __init__(self, *markers, path="test_x.py"):
        self.markers = [getattr(pytest.mark, m) for m in markers]
        self.path = conftest.REPO / "tests" / path

    def get_closest_marker(self, name):
        return next((m for m in self.markers if m.name == name), None)

    def add_marker(self, marker):
        self.markers.append(marker)


class _Config:
    def __init__(self, run_slow):
        self.run_slow = run_slow

    def getoption(self, name):
        assert name == "--run-slow"
        return self.run_slow


@pytest.mark.parametrize("run_slow", [False, True])
def test_slow_items_are_skipped_without_the_option(run_slow):
    slow, fast = _Item("slow"), _Item("shared_data")
    conftest.pytest_collection_modifyitems(_Config(run_slow), [slow, fast])
    skip = slow.get_closest_marker("skip")
    if run_slow:
        assert skip is None
    else:
        assert skip.kwargs["reason"] == conftest.SLOW_REASON
        assert "--run-slow" in skip.kwargs["reason"]
    assert fast.get_closest_marker("skip") is None


def test_this_session_skips_its_slow_tests_unless_asked(request):
    run_slow = request.config.getoption("--run-slow")  # registered, or ValueError
    slow = [i for i in request.session.items if i.get_closest_marker("slow")]
    if not slow:
        pytest.skip("no slow test collected in this session")
    for item in slow:
        assert (item.get_closest_marker("skip") is None) == run_slow, item.nodeid


def test_the_longest_files_are_collected_first():
    """xdist hands out whole files in collection order: the long ones first,
    each file's tests in their own order."""
    names = ["data/test_a.py", "models/test_builders.py", "test_cli.py"]
    items = [_Item(path=name) for name in names for _ in range(2)]
    order = [conftest.LONGEST_FIRST.index(n) for n in names[1:]]
    assert order[0] < order[1]  # models/test_builders.py before test_cli.py
    ids = [id(i) for i in items]
    conftest.pytest_collection_modifyitems(_Config(True), items)
    assert [id(i) for i in items] == [ids[2], ids[3], ids[4], ids[5], ids[0], ids[1]]
