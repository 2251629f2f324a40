"""Shared fixtures (where MNIST is, tiny generated datasets, real trainings once per session) and
the markers every test gets, assigned here rather than in the test files:

- `browser`: drives Debian's chromium through Playwright against a real server
- `server`: starts a real `streamlit run app.py` (the browser, load and soak tests)
- `cluster`: starts a real Dask scheduler and workers
- `needs_mnist`: reads real MNIST (skips, saying why, where none is reachable)
- `slow`: any of the above, a real training on MNIST, a page under AppTest, a fresh process
  measured or run: `python -m pytest -m "not slow"` is the inner loop (README)
"""

import os

import pytest

from support.helpers import SHARED_MNIST, make_dataset

# On this project's machines there is no internet: point the loader at the offline copy of the
# MNIST test split. On a user's machine without it, the loader's own order (Keras cache, download)
# applies, and tests that need real data skip if none is reachable.
if SHARED_MNIST.is_dir() and not os.environ.get("GRADVIZ_DATA_DIR"):
    os.environ["GRADVIZ_DATA_DIR"] = str(SHARED_MNIST)


@pytest.fixture
def tiny_data():
    return make_dataset()


@pytest.fixture(scope="session")
def real_data_or_skip():
    """A loader for real MNIST; skips (saying why) if this machine has none."""
    from gradviz.data import DataUnavailable, load_dataset

    def load(train_size: int):
        try:
            return load_dataset(train_size)
        except DataUnavailable as error:
            pytest.skip(f"real MNIST not available here: {error}")

    return load


_TRAINED: dict = {}


@pytest.fixture(scope="session")
def trained(real_data_or_skip):
    """train(config) on real MNIST, once per config per test session (several tests read the same runs)."""
    from gradviz.training.train import train

    def run(config):
        key = config.cache_key()
        if key not in _TRAINED:
            _TRAINED[key] = train(config, real_data_or_skip(config.train_size))
        return _TRAINED[key]

    return run


# Whole files of slow tests, and single slow tests elsewhere (by name prefix): real servers,
# pages under AppTest that train, CLI runs in fresh processes, peak-memory measurements.
SLOW_FILES = {"test_app.py", "test_pages.py", "test_page_limits.py", "test_offline.py", "test_cli_limits.py",
              "test_determinism.py", "test_fixes.py", "test_loadtest.py", "test_cluster.py", "test_browser.py",
              "test_browser_limits.py", "test_open_a_run.py", "test_class_pages.py", "test_browser_class.py"}
SLOW_TESTS = {"test_cost.py": ("test_estimate_is_within_half", "test_the_largest_allowed"),
              "test_cli.py": ("test_bench_json", "test_exploding_linear", "test_seed_", "test_probe_",
                              "test_run_save"),
              "test_recurrent.py": ("test_through_time_page",),
              "test_store.py": ("test_precompute_then", "test_two_processes"),
              "test_sharpness.py": ("test_power_iteration", "test_the_traced_sharpness_matches",
                                    "test_a_shared_sharpness",
                                    "test_trainings_eight"),
              "test_sweep.py": ("test_the_learning_rate_law_on",),
              "test_fix_search.py": ("test_the_search_offers", "test_the_learning_rate_links"),
              "test_lessons.py": ("test_builtin_challenge_solutions_meet_their_goals",
                                  "test_builtin_predictions_have_an_answer")}
MARKS_BY_FILE = {"test_browser.py": ("browser", "server"), "test_browser_limits.py": ("browser", "server"),
                 "test_open_a_run.py": ("browser", "server"), "test_browser_class.py": ("browser", "server"),
                 "test_loadtest.py": ("server",), "test_cluster.py": ("cluster",)}
REAL_DATA_FIXTURES = {"trained", "real_data_or_skip"}


def pytest_collection_modifyitems(items):
    for item in items:
        name = item.path.name
        marks = set(MARKS_BY_FILE.get(name, ()))
        if "cluster" in item.name:
            marks.add("cluster")
        if REAL_DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            marks |= {"needs_mnist", "slow"}
        if name in SLOW_FILES or item.name.startswith(SLOW_TESTS.get(name, ("\0",))) or marks:
            marks.add("slow")
        for mark in sorted(marks):
            item.add_marker(mark)
