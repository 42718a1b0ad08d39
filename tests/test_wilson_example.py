"""The seed's example, corrected, end to end: `flowmetal run` posts the job to a (fake)
wilson service on 127.0.0.1 through the HTTP request connector, and waits for its
callback through the callback server, all in one process."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

from conftest import ROOT

sys.path.insert(0, str(ROOT / "examples"))
import wilson_service  # noqa: E402


def test_the_wilson_job_runs_end_to_end(tmp_path):
    service = wilson_service.serve(port=0, delay=0.3)
    url = f"http://127.0.0.1:{service.server_port}/jobs"
    try:
        result = subprocess.run(
            [sys.executable, "-m", "flowmetal", "run", str(ROOT / "examples" / "wilson.flow"), "job",
             '"host-1"', "[+reboot+ +reinstall+]", "(duration 1 +hours+)", json.dumps(url)],
            cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stdout == '{"host" "host-1" "stages" ["reboot" "reinstall"] "status" "done"}\n'
        jobs = json.loads(urllib.request.urlopen(url).read())
    finally:
        service.shutdown()
    (job,) = jobs
    runs = json.loads(subprocess.run([sys.executable, "-m", "flowmetal", "runs", "--format", "json"], cwd=tmp_path,
                                     capture_output=True, text=True, timeout=60).stdout)
    (run,) = runs
    # The service saw one request, with the idempotency key of its step, and called back once.
    assert job["key"] == f"{run['id']}:2"
    assert job["callbacks"][0]["url"].split("/callback/")[1]
    events = json.loads(subprocess.run([sys.executable, "-m", "flowmetal", "trace", run["id"], "--format", "json"],
                                       cwd=tmp_path, capture_output=True, text=True, timeout=60).stdout)
    kinds = [e["kind"] for e in events]
    assert kinds.count("step-requested") == 5 and kinds[-1] == "run-completed"
