#!/usr/bin/env bash
# A PNG screenshot of a run's TensorBoard, taken with headless Chromium.
#
#   scripts/tensorboard_screenshot.sh RUN_DIR out.png [DASHBOARD]
#
# RUN_DIR: a run directory (its tensorboard/ is served), a sweep directory or any
# event directory. DASHBOARD: the URL fragment of the dashboard to show: timeseries
# (the scalars, default), hparams, text, ...
#
# TensorBoard (.venv/bin/tensorboard when present, else tensorboard on PATH) is
# started on a free port of 127.0.0.1, waited for until it lists the runs, and
# always stopped at exit. Settings (environment): TAG_FILTER (a regex of the tags
# to show, e.g. '^epoch_'), SMOOTHING (of the scalar curves, 0 to 0.999; default
# TensorBoard's 0.6), WINDOW_SIZE (default 1400,1000), CHROMIUM (the browser
# binary; default: the first of chromium, chromium-browser, google-chrome,
# google-chrome-stable on PATH).
set -euo pipefail

usage="usage: $0 RUN_DIR out.png [DASHBOARD]"
if [[ $# -lt 2 || $# -gt 3 ]]; then
    echo "$usage" >&2
    exit 2
fi
run_dir=$1
out=$2
dashboard=${3:-timeseries}
window_size=${WINDOW_SIZE:-1400,1000}

die() {
    echo "tensorboard_screenshot: error: $*" >&2
    exit 2
}

[[ $window_size =~ ^[0-9]+,[0-9]+$ ]] || die "WINDOW_SIZE=$window_size: expected WIDTH,HEIGHT"
[[ -d $run_dir ]] || die "$run_dir: no such directory"
logdir=$run_dir
[[ -d $run_dir/tensorboard ]] && logdir=$run_dir/tensorboard
[[ $out == *.png ]] || die "$out: the output must be a .png file"
out_dir=$(dirname -- "$out")
[[ -d $out_dir ]] || die "$out_dir: no such directory (for $out)"
out=$(cd -- "$out_dir" && pwd)/$(basename -- "$out")

if [[ -n ${CHROMIUM:-} ]]; then
    chromium=$(command -v "$CHROMIUM") || die "CHROMIUM=$CHROMIUM: no such program"
else
    chromium=
    for name in chromium chromium-browser google-chrome google-chrome-stable; do
        chromium=$(command -v "$name") && break
    done
    [[ -n $chromium ]] || die "no chromium binary found (looked for chromium," \
        "chromium-browser, google-chrome and google-chrome-stable on PATH; or set" \
        "CHROMIUM); install it, e.g. sudo apt-get install chromium"
fi

repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -x $repo/.venv/bin/tensorboard ]]; then
    tensorboard=$repo/.venv/bin/tensorboard
    python=$repo/.venv/bin/python
else
    tensorboard=$(command -v tensorboard) \
        || die "no tensorboard found (neither $repo/.venv/bin/tensorboard nor on PATH)"
    python=$(command -v python3 || command -v python) || die "no python3 found"
fi

work=$(mktemp -d)
tensorboard_pid=
cleanup() {
    if [[ -n $tensorboard_pid ]]; then
        kill "$tensorboard_pid" 2>/dev/null || true
        wait "$tensorboard_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$tensorboard" --logdir "$logdir" --host 127.0.0.1 --port 0 --load_fast false \
    >"$work/tensorboard.log" 2>&1 &
tensorboard_pid=$!

# Port 0: the system picks a free port, which TensorBoard logs. It is ready once it
# answers and has loaded at least one run.
port=$("$python" - "$tensorboard_pid" "$work/tensorboard.log" <<'EOF'
import json, os, re, sys, time, urllib.request

pid, log = int(sys.argv[1]), sys.argv[2]
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("tensorboard_screenshot: error: TensorBoard exited:\n"
                 + open(log).read()[-2000:])
    match = re.search(r"http://127\.0\.0\.1:(\d+)/", open(log).read())
    try:
        if match:
            url = f"http://127.0.0.1:{match[1]}/data/runs"
            with urllib.request.urlopen(url, timeout=5) as response:
                if json.load(response):
                    print(match[1])
                    sys.exit(0)
    except (OSError, ValueError):
        pass
    time.sleep(0.5)
sys.exit("tensorboard_screenshot: error: TensorBoard listed no run within 120 s:\n"
         + open(log).read()[-2000:])
EOF
) || exit 1

# forceSVG: charts drawn as SVG elements (not on a WebGL canvas): headless Chromium
# has no GPU, and the settling check below sees the curves being drawn.
url="http://127.0.0.1:$port/?forceSVG=true"
if [[ -n ${TAG_FILTER:-} ]]; then
    url+="&tagFilter=$("$python" -c 'import sys, urllib.parse
print(urllib.parse.quote(sys.argv[1], safe=""))' "$TAG_FILTER")"
fi
if [[ -n ${SMOOTHING:-} ]]; then
    [[ $SMOOTHING =~ ^(0|0?\.[0-9]+)$ ]] || die "SMOOTHING=$SMOOTHING: expected 0 to 0.999"
    url+="&smoothing=$SMOOTHING"
fi
url+="#$dashboard"
rm -f "$out"
# Chromium is driven over the DevTools protocol (--remote-debugging-pipe: JSON
# messages on fds 3 and 4): the screenshot is taken once the page has settled (no
# request in flight and no element added for a second), not after a fixed time, so
# the lazily loaded chart cards are filled in even on a slow machine.
"$python" - "$chromium" "$url" "$out" "$window_size" "$work" <<'EOF' || exit 1
import base64, fcntl, json, os, select, subprocess, sys, time

chromium, url, out, size, work = sys.argv[1:]
width, height = (int(n) for n in size.split(","))
COUNT_ELEMENTS = """(() => { let n = 0; const walk = root => {
    for (const e of root.querySelectorAll("*")) { n++; if (e.shadowRoot) walk(e.shadowRoot); }
}; walk(document); return [document.readyState, n]; })()"""


def high_pipe():  # Above fd 4, so the dup2 onto 3 and 4 below cannot clobber them.
    ends = os.pipe()
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in ends]
    for fd in ends:
        os.close(fd)
    return high


commands_in, commands_out = high_pipe()
replies_in, replies_out = high_pipe()
log = open(os.path.join(work, "chromium.log"), "w")
browser = subprocess.Popen(
    [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
     "--no-first-run", "--no-default-browser-check", f"--window-size={width},{height}",
     f"--user-data-dir={work}/profile", "--remote-debugging-pipe", "about:blank"],
    stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=False,
    preexec_fn=lambda: (os.dup2(commands_in, 3), os.dup2(replies_out, 4)))
os.close(commands_in)
os.close(replies_out)
buffer, next_id, in_flight, last_activity = b"", 0, set(), time.monotonic()


def receive(timeout):
    """The next message, or None after `timeout` seconds; tracks the requests."""
    global buffer, last_activity
    deadline = time.monotonic() + timeout
    while b"\0" not in buffer:
        wait = deadline - time.monotonic()
        if wait <= 0 or not select.select([replies_in], [], [], wait)[0]:
            return None
        chunk = os.read(replies_in, 1 << 20)
        if not chunk:
            sys.exit("tensorboard_screenshot: error: Chromium exited:\n"
                     + open(os.path.join(work, "chromium.log")).read()[-2000:])
        buffer += chunk
    message, buffer = buffer.split(b"\0", 1)
    message = json.loads(message)
    method, params = message.get("method"), message.get("params", {})
    if method == "Network.requestWillBeSent":
        in_flight.add(params["requestId"])
    elif method in ("Network.loadingFinished", "Network.loadingFailed"):
        in_flight.discard(params["requestId"])
    if method and method.startswith("Network."):
        last_activity = time.monotonic()
    return message


def call(method, session=None, **params):
    global next_id
    next_id += 1
    message = {"id": next_id, "method": method, "params": params}
    if session:
        message["sessionId"] = session
    os.write(commands_out, json.dumps(message).encode() + b"\0")
    while True:
        reply = receive(60)
        if reply is None:
            sys.exit(f"tensorboard_screenshot: error: Chromium did not answer {method}")
        if reply.get("id") == next_id:
            if "error" in reply:
                sys.exit(f"tensorboard_screenshot: error: {method}: {reply['error']}")
            return reply["result"]


try:
    target = call("Target.createTarget", url="about:blank")["targetId"]
    page = call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    call("Emulation.setDeviceMetricsOverride", page, width=width, height=height,
         deviceScaleFactor=1, mobile=False)
    call("Network.enable", page)
    call("Page.navigate", page, url=url)
    start, previous, deadline = time.monotonic(), None, time.monotonic() + 120
    while time.monotonic() < deadline:
        while receive(0.25) is not None:  # Drain the events of the last 0.25 s.
            pass
        state = call("Runtime.evaluate", page, expression=COUNT_ELEMENTS,
                     returnByValue=True)["result"]["value"]
        quiet = not in_flight and time.monotonic() - last_activity > 1.0
        if state[0] == "complete" and quiet and state == previous \
                and time.monotonic() - start > 2.0:
            break
        if state != previous:  # Elements were added or removed: not settled yet.
            previous, last_activity = state, time.monotonic()
    else:
        print("tensorboard_screenshot: warning: the page did not settle within 120 s",
              file=sys.stderr)
    time.sleep(0.5)  # CSS transitions (checkboxes, tabs).
    png = call("Page.captureScreenshot", page, format="png")["data"]
    with open(out, "wb") as f:
        f.write(base64.b64decode(png))
finally:
    try:
        os.write(commands_out, json.dumps({"id": 0, "method": "Browser.close"}).encode()
                 + b"\0")
        browser.wait(timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        browser.kill()
        browser.wait()
EOF
if [[ ! -s $out ]]; then
    die "no screenshot written"
fi
echo "$out"
