"""The learning run's own process: ``python -m callgate.learn.child REQUEST RESULT``.

``callgate learn`` runs the guest in a fresh interpreter, for two reasons: strace
watches that process alone (and from its first instruction), and the guest's stdout
can be pointed elsewhere than the learned policy's; and a USER_NOTIF watcher installs a
filter no process could remove, so it must be a process made for the purpose. REQUEST
and RESULT are JSON files: data in, data out, never pickle.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

from callgate.errors import CallgateError
from callgate.gates.wasi import Preopen, WasiConfig
from callgate.kernel.binding import raw_syscall
from callgate.kernel.strace import BEGIN_MARKER, END_MARKER
from callgate.learn.kernel_trace import notify_everything
from callgate.learn.recorder import record
from callgate.runtime.limits import Limits


def main(argv: list[str]) -> int:
    request_file, result_file = argv
    request = json.loads(Path(request_file).read_text())
    config = WasiConfig(args=request["args"], env=request["env"],
                        preopens=[Preopen(host, guest, readonly)
                                  for host, guest, readonly in request["preopens"]],
                        stdin="inherit", stdout="inherit", stderr="inherit")
    limits = Limits(**request["limits"])
    watch = request["watch"]
    begin: dict[str, Callable[[], object]] = {"strace": partial(raw_syscall, BEGIN_MARKER),
                                              "user_notif": notify_everything}
    try:
        recording = record(request["module"], config, limits, on_begin=begin.get(watch),
                           on_end=partial(raw_syscall, END_MARKER) if watch else None)
        result: dict[str, object] = {"recording": recording.to_json()}
    except CallgateError as exc:
        result = {"error": str(exc)}
    Path(result_file).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
