"""A real SMTP server for the on-call email tests (aiosmtpd): listens on 127.0.0.1:PORT and writes
each received message to DIR as `<n>.eml`, with the envelope recipients in an `X-Rcpt-To` header
first. Prints `ready` once it accepts connections; runs until killed."""

import sys
import time
from pathlib import Path

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory):
        self.directory = Path(directory)
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        head = ("X-Rcpt-To: " + ", ".join(envelope.rcpt_tos) + "\r\n").encode()
        tmp = self.directory / f".{self.count}.tmp"
        tmp.write_bytes(head + envelope.content)
        tmp.rename(self.directory / f"{self.count}.eml")
        return "250 OK"


controller = Controller(Sink(sys.argv[2]), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
