"""The peer: a hello-world Falcon app on the same waitress settings, answering like a heartbeat."""

from __future__ import annotations

import argparse

import falcon
from waitress import serve

from exporter.server import WAITRESS_SEND_BYTES


class Hello:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.bounded_stream.read()
        resp.media = {
            "kiosk_id": 1,
            "received_at": "2026-11-26T10:00:00.000000Z",
            "next_heartbeat_in_seconds": 60,
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    app = falcon.App()
    app.add_route("/kiosk/heartbeat", Hello())
    serve(
        app,
        host="127.0.0.1",
        port=args.port,
        threads=args.threads,
        ident="hello",
        send_bytes=WAITRESS_SEND_BYTES,  # the same waitress settings as the exporter
        connection_limit=2000,
    )


if __name__ == "__main__":
    main()
