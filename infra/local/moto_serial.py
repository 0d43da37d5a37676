"""moto server with its requests handled one at a time.

moto handles requests on threads and does not lock its DynamoDB tables, so two concurrent
conditional writes can both succeed there, which DynamoDB never allows. eddo's exactly-once
guarantees rest on conditional writes, so the local stack runs moto through this wrapper: the
same moto application and request handler, each request served whole before the next (eddo's
local stack never long-polls, so nothing waits on another request).

Usage: python moto_serial.py HOST PORT
"""

import os
import sys
import threading

from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serial(environ, start_response):
        with lock:
            # The whole body is produced under the lock, not just the first chunk.
            return list(app(environ, start_response))

    run_simple(host, port, serial, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
