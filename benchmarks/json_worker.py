"""A Python process in another environment (the reference one, with PyTorch),
driven by one JSON line each way: `{"op": ..., ...}` in, one JSON answer out,
`{"op": "quit"}` to end it. `transformers_worker.py` and `nanogpt_reference.py`
serve this protocol."""

import json
import os
import subprocess


class JsonWorker:
    """`python script` as a subprocess answering `call(op, **request)`."""

    def __init__(self, python, script):
        self.name = os.path.basename(script)
        self.process = subprocess.Popen(
            [python, script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def call(self, op, **request):
        """Sends `{"op": op, **request}`; returns the decoded answer."""
        self.process.stdin.write(json.dumps({"op": op, **request}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            raise RuntimeError(f"{self.name} exited with {code} on {op!r} (its error is above)")
        return json.loads(line)

    def close(self):
        """Asks the process to quit (if it still runs) and waits for it."""
        if self.process.poll() is None:
            self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.process.stdin.close()
        self.process.wait()
