"""The gateway in one process under cProfile; the profile is written to PROFILE_PATH when it is told to stop.

Run: python -m bench.profiled_gateway PROFILE_PATH (settings from the PM_* environment, as `pm-gateway`).
"""

from __future__ import annotations

import cProfile
import sys
import time
from types import FrameType

import uvicorn

from gateway.cli import worker_app
from gateway.settings import load_settings

profiler = cProfile.Profile(time.process_time)  # CPU time: other processes on the machine do not count


class ProfiledServer(uvicorn.Server):
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        profiler.disable()
        profiler.dump_stats(sys.argv[1])
        super().handle_exit(sig, frame)


if __name__ == "__main__":
    settings = load_settings()
    app = worker_app()
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None, access_log=False)
    profiler.enable()
    ProfiledServer(config).run()
