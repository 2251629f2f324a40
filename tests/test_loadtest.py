"""The load-test script stays working: a small run (N = 3 websocket sessions) against a real server."""

from test_browser_limits import SERVER_RSS_BOUND_MB

import loadtest


def test_three_concurrent_sessions_all_get_their_result():
    report = loadtest.run(sessions=3, timeout=300, in_flight=True)
    print(report)
    assert report["client"] == "websocket" and report["first_visit"]["ok"]
    assert report["completed"] == 3 and report["failed"] == 0, report["failures"]
    assert report["queued"] >= 1  # three at once on one training slot: somebody waited, and was told
    assert report["p50_seconds"] <= report["p95_seconds"] <= report["max_seconds"]
    assert report["in_flight_run"]["ok"]
    # the server's peak memory was read from /proc, and it is at least what it used idle
    assert report["server_rss_peak_mb"] >= report["server_rss_after_first_visit_mb"] > report["server_rss_idle_mb"] > 20
    log = open(report["server_log"]).read()
    # the first visit, three sessions and the larger run: each config trained exactly once
    assert log.count(" finished after ") == 5 and log.count(" started (") == 5


def test_a_class_on_two_servers_and_two_workers_survives_a_worker_killed_mid_training():
    """N = 4 sessions across two servers, each config asked for twice; one worker is killed while
    it trains: every session still finishes, and each config trained once."""
    report = loadtest.run_cluster(sessions=4, workers=2, timeout=300, kill_worker=True)
    print(report)
    assert report["completed"] == 4 and report["failed"] == 0, report["failures"]
    assert report["killed_worker"] is not None
    assert report["trainings"] == report["distinct_configs"] == 2 and report["deduplicated"] == 2
    assert report["trainings_per_worker"][report["killed_worker"]] == 0  # its run finished on the other worker


def test_a_short_soak_of_every_page_fails_no_session_and_stays_inside_the_memory_bound():
    """The CI-sized soak (docs/hosting.md has a class-length one): five students arriving over a
    minute, each opening six views of the cycle (presets, slider configs, the largest allowed and
    an over-the-cap link, a hostile link, Compare, sweeps, the other pages)."""
    from soak import run_soak

    report = run_soak(sessions=5, minutes=1, views=6, timeout=600)
    print(report)
    assert report["views"] == 30 and report["failed_sessions"] == 0, report["failed_views"]
    assert report["server_rss_peak_mb"] < SERVER_RSS_BOUND_MB
