"""One memory budget for every cache: least recently used first, across caches; oversize entries
returned, never kept; the budget read from GRADVIZ_CACHE_MB."""

import threading

from gradviz.serving.lru import BoundedLRU, CacheBudget
from gradviz.serving.results import ENTRY_OVERHEAD, ResultCache
from gradviz.serving.settings import CACHE_MB_ENV, DEFAULT_CACHE_MB, cache_budget_mb
from support.results import fake_result


def sized(name, budget):
    return BoundedLRU(name, len, budget=budget)  # a value's size is its length: easy to reason about


def test_the_least_recently_used_entry_goes_first_whichever_cache_holds_it():
    budget = CacheBudget(100)
    results, graphs = sized("results", budget), sized("graphs", budget)
    results.put("a", "x" * 40)
    graphs.put("g", "y" * 40)
    assert results.get("a") == "x" * 40  # "a" is now more recent than "g"
    results.put("b", "z" * 40)  # 120 > 100: the oldest, in the other cache, goes
    assert graphs.get("g") is None and results.get("a") is not None and results.get("b") is not None
    assert budget.used == 80 and budget.sizes() == {"results": 80}


def test_an_entry_larger_than_the_whole_budget_is_returned_and_not_kept():
    budget = CacheBudget(10)
    cache = sized("c", budget)
    cache.put("small", "ab")
    assert cache.put("big", "x" * 11) == "x" * 11
    assert "big" not in cache and cache.get("small") == "ab" and budget.used == 2


def test_replacing_a_key_counts_its_new_size_once():
    budget = CacheBudget(100)
    cache = sized("c", budget)
    cache.put("k", "x" * 30)
    cache.put("k", "x" * 50)
    assert budget.used == 50 and len(cache) == 1


def test_clear_and_pop_give_the_bytes_back():
    budget = CacheBudget(100)
    cache = sized("c", budget)
    cache.put("a", "x" * 10)
    cache.put("b", "x" * 20)
    assert cache.pop("a") == "x" * 10 and budget.used == 20
    cache.clear()
    assert budget.used == 0 and len(cache) == 0


def test_the_budget_follows_the_environment(monkeypatch):
    monkeypatch.delenv(CACHE_MB_ENV, raising=False)
    assert cache_budget_mb() == DEFAULT_CACHE_MB
    monkeypatch.setenv(CACHE_MB_ENV, "64")
    assert cache_budget_mb() == 64 and CacheBudget().budget_bytes == 64 * 2**20
    monkeypatch.setenv(CACHE_MB_ENV, "0")  # a host may turn every cache off
    cache = BoundedLRU("off", len, budget=CacheBudget())
    cache.put("a", "x")
    assert cache.get("a") is None
    monkeypatch.setenv(CACHE_MB_ENV, "plenty")
    assert cache_budget_mb() == DEFAULT_CACHE_MB


def test_results_are_counted_by_their_arrays_and_listed_by_recency():
    one = fake_result(steps=1000)
    budget = CacheBudget(int((one.nbytes() + ENTRY_OVERHEAD) * 2.5))
    cache = ResultCache(budget=budget)
    for key in "abcde":
        cache.put(key, fake_result(steps=1000, config=fake_result().config.replace(seed=ord(key))))
    assert len(cache) == 2 and cache.nbytes <= budget.budget_bytes
    assert cache.get("e") is not None and cache.get("a") is None
    cache.get("d")
    assert [c.seed for c in cache.configs()] == [ord("d"), ord("e")]


def test_many_threads_never_push_the_caches_past_the_budget():
    budget = CacheBudget(1000)
    caches = [sized(f"c{i}", budget) for i in range(4)]

    def churn(i):
        for k in range(500):
            caches[(i + k) % 4].put(f"{i}-{k}", "x" * (k % 97 + 1))
            caches[k % 4].get(f"{i}-{k - 1}")

    threads = [threading.Thread(target=churn, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert budget.used <= 1000
    assert budget.used == sum(len(v) for c in caches for v in (c.get(k) for k in list(c)) if v is not None)
