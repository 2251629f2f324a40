"""The load-test script stays working: a small run (N = 3 websocket sessions) against a real server."""

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
