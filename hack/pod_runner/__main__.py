"""python3 -m pod_runner --kubeconfig FILE --state-dir DIR  (started and stopped by hack/cluster)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from .kube_api import KubeApi
from .pids import kill_leftovers
from .provisioner import provision_forever
from .runner import PodRunner


class _Shutdown(Exception):
    pass


def _raise_shutdown(signum: int, frame: FrameType | None) -> None:
    raise _Shutdown(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pod_runner", description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--state-dir", required=True, type=Path, help="pod directories, logs, volumes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(threadName)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not one line per request

    api = KubeApi(args.kubeconfig)
    for pid in kill_leftovers(args.state_dir):
        logging.warning("killed process group %s left by an earlier runner", pid)
    stop = threading.Event()
    runner = PodRunner(api, args.state_dir)
    provisioner = threading.Thread(
        target=provision_forever,
        name="provisioner",
        args=(api, args.state_dir / "volumes", stop),
        daemon=True,
    )
    signal.signal(signal.SIGTERM, _raise_shutdown)
    signal.signal(signal.SIGINT, _raise_shutdown)
    provisioner.start()
    logging.info("pod runner watching %s", api.host)
    try:
        runner.watch_forever(stop)
    except _Shutdown as why:
        logging.info("shutting down (%s)", why)
    finally:
        stop.set()
        runner.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
