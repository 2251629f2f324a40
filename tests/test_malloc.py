"""glibc's malloc tuned for a server: capped arenas, and freed pages handed back after a training."""

import os
import platform

import pytest

from gradviz.serving import malloc


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_malloc_arenas_are_capped_unless_the_host_chose(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert malloc.limit_malloc_arenas() is True
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert malloc.limit_malloc_arenas() is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_releasing_free_memory_returns_freed_pages_to_the_os():
    def rss_mb():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    blocks = [bytes(2000) for _ in range(100_000)]  # ~200 MB from malloc's heap, not mmap
    kept = blocks[::50]  # these stay alive between the freed ones: the heap cannot just shrink from the top
    del blocks
    before = rss_mb()
    malloc.release_free_memory()
    assert rss_mb() < before - 50
    assert len(kept) == 2000
