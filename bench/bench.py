"""cocalc-init against its peers, each as PID 1 of a fresh PID namespace.

Medians and ratios from one interleaved run; see bench/run.sh. Prints the
tables and writes them to bench/RESULTS.md.
"""

import os
import platform
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

BIN = os.path.abspath(sys.argv[1])
QUICK = os.environ.get("QUICK") == "1"
RUNS = 60 if QUICK else 300
TMP = tempfile.mkdtemp(prefix="cocalc-init-bench-")
NS = ["unshare", "--pid", "--fork", "--mount-proc"]

# How each init runs one main command, tini-style.
INITS = {
    "cocalc-init": [BIN, "-q", "-l", os.path.join(TMP, "cocalc.log"), "--"],
    "tini": ["tini", "--"],
    "tini-static": ["tini-static", "--"],
    "dumb-init": ["dumb-init"],
    "catatonit": ["catatonit", "--"],
}


def median(xs):
    return statistics.median(xs)


def p99(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.99))]


def child_of(pid, timeout=5.0):
    """The first child of pid (the namespace's init, under unshare)."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                kids = f.read().split()
            if kids:
                return int(kids[0])
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"no child of {pid}")


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def pss_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def supervisord_conf(programs, logfile, extra=""):
    path = os.path.join(TMP, f"supervisord-{random.randrange(1 << 30)}.conf")
    with open(path, "w") as f:
        f.write(f"[supervisord]\nnodaemon=true\nlogfile={logfile}\npidfile={TMP}/sd.pid\n"
                "[unix_http_server]\nfile=%s/sd.sock\n" % TMP)
        for name, cmd in programs:
            f.write(f"[program:{name}]\ncommand={cmd}\nautorestart=unexpected\nexitcodes=0,2\n{extra}\n")
    return path


results = []  # (section, rows)


def section(title, header, rows):
    results.append((title, header, rows))
    print(f"\n## {title}")
    print(" | ".join(header))
    for r in rows:
        print(" | ".join(str(c) for c in r))


# 1. start+exit overhead and instructions --------------------------------
def start_exit():
    times = {name: [] for name in ["(no init)"] + list(INITS)}
    order = list(times)
    for _ in range(RUNS):
        random.shuffle(order)
        for name in order:
            cmd = NS + (INITS[name] if name in INITS else []) + ["/bin/true"]
            t0 = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times[name].append(time.perf_counter() - t0)
    base = median(times["(no init)"])
    rows = []
    for name in INITS:
        m = median(times[name])
        out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
                             + INITS[name] + ["/bin/true"], capture_output=True, text=True)
        found = re.search(r"Collected : (\d+)", out.stderr)
        rows.append([name, f"{m * 1e6:.0f}", f"+{(m - base) * 1e6:.0f}", found.group(1) if found else "?"])
    rows.insert(0, ["(no init)", f"{base * 1e6:.0f}", "+0", "-"])
    section(f"start+exit: INIT -- /bin/true, median of {RUNS}, interleaved",
            ["init", "µs", "overhead µs", "callgrind instructions"], rows)


# 2. idle wake-ups and memory ---------------------------------------------
def idle():
    secs = 3 if QUICK else 10
    setups = {name: NS + argv + ["sleep", "1000"] for name, argv in INITS.items()}
    progs = [(f"p{i}", "sleep 1000") for i in range(3)]
    setups["cocalc-init, 3 programs, control socket"] = NS + [
        BIN, "-q", "-l", os.path.join(TMP, "idle3.log"), "--control", os.path.join(TMP, "idle3.sock")] + \
        sum((["-p", f"{n}={c}"] for n, c in progs), []) + ["--", "sleep", "1000"]
    # The same with a ready=tcp program: its probes stop once it is up.
    port = 18000 + random.randrange(1000)
    setups["cocalc-init, 3 programs, one ready=tcp"] = NS + [
        BIN, "-q", "-l", os.path.join(TMP, "idle4.log"), "--control", os.path.join(TMP, "idle4.sock"),
        "-p", f"web=python3 -m http.server {port} --bind 127.0.0.1", "-o", f"web.ready=tcp:{port}",
        "-p", "hub=sleep 1000", "-o", "hub.after=web", "-p", "p2=sleep 1000", "--", "sleep", "1000"]
    # A `tail -f` of a silent program: following costs no wake-up.
    follow_sock = os.path.join(TMP, "idle5.sock")
    setups["cocalc-init, 3 programs, tail -f of one"] = NS + [
        BIN, "-q", "-l", os.path.join(TMP, "idle5.log"), "--control", follow_sock] + \
        sum((["-p", f"{n}={c}"] for n, c in progs), []) + ["--", "sleep", "1000"]
    conf = supervisord_conf([("main", "sleep 1000")] + progs, os.path.join(TMP, "sd-idle.log"))
    setups["supervisord, 4 programs"] = NS + ["supervisord", "-c", conf]
    procs = {name: subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for name, cmd in setups.items()}
    time.sleep(1.5)
    pids = {name: child_of(p.pid) for name, p in procs.items()}
    follower = subprocess.Popen([BIN, "tail", "-f", "p0", "--control", follow_sock],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)

    def switches(pid):
        s = status(pid)
        return int(s["voluntary_ctxt_switches"]) + int(s["nonvoluntary_ctxt_switches"])

    before = {name: switches(pid) for name, pid in pids.items()}
    time.sleep(secs)
    rows = []
    for name, pid in pids.items():
        woke = switches(pid) - before[name]
        s = status(pid)
        rows.append([name, woke, s["VmRSS"], f"{pss_kib(pid)} kB"])
    # Killing a namespace's init ends everything in it.
    for pid in pids.values():
        os.kill(pid, signal.SIGKILL)
    for p in procs.values():
        p.wait()
    follower.kill()
    follower.wait()
    section(f"idle: wake-ups over {secs} s, memory", ["init", "wake-ups", "VmRSS", "Pss"], rows)


# 3. zombie burst ---------------------------------------------------------
BURST = "my $n = %d; for (1..$n) { my $p = fork(); exit 0 if defined $p && $p == 0; } %s"


def reaping():
    n = 5000 if QUICK else 20000
    rows = []
    own = []
    inherited = {name: [] for name in INITS}
    for _ in range(3 if QUICK else 5):
        t0 = time.perf_counter()
        subprocess.run(NS + ["perl", "-e", BURST % (n, "1 while wait() > 0;")], check=True)
        own.append(time.perf_counter() - t0)
        for name, argv in INITS.items():
            # The main command leaves n zombies for init to reap in a burst.
            t0 = time.perf_counter()
            subprocess.run(NS + argv + ["perl", "-e", BURST % (n, "exit 0;")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            inherited[name].append(time.perf_counter() - t0)
    base = median(own)
    rows.append(["(perl reaps its own)", f"{base * 1e3:.0f}", "1.00"])
    for name, ts in inherited.items():
        rows.append([name, f"{median(ts) * 1e3:.0f}", f"{median(ts) / base:.2f}"])
    section(f"zombie burst: {n} children, ms start to end", ["init", "ms", "ratio"], rows)


# 3c. instructions per reaped orphan -------------------------------------
ORPHANS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "orphans.pl")
# Not PID 1 (valgrind runs the init itself): each init is a child
# subreaper, tini with -s, so that the orphans come to it.
REAPERS = {
    "cocalc-init": INITS["cocalc-init"],
    "catatonit": INITS["catatonit"],
    "tini -s": ["tini", "-s", "--"],
}


def callgrind_orphans(small, large, extra):
    """Each reaper's callgrind count for `INIT -- perl orphans.pl N EXTRA`
    at both sizes, and the difference over the difference in orphans."""
    counts = {}
    for name, argv in REAPERS.items():
        for n in (small, large):
            out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
                                 + argv + ["perl", ORPHANS, str(n)] + extra, capture_output=True, text=True)
            found = re.search(r"Collected : (\d+)", out.stderr)
            counts[(name, n)] = int(found.group(1)) if found else None
    per = {name: (counts[(name, large)] - counts[(name, small)]) / (large - small)
           for name in REAPERS if counts[(name, large)] and counts[(name, small)]}
    return counts, per


def orphans():
    """callgrind's count of the init's instructions for `INIT -- perl
    orphans.pl N` at two sizes: the difference over the difference in
    orphans is the cost of one reap, with start-up and exit taken out.
    orphans.pl stops the init while the orphans end, so each init reaps
    them all at one wake-up and the count repeats exactly run to run."""
    small, large = 200, 2000
    counts, per = callgrind_orphans(small, large, [])
    rows = []
    for name in REAPERS:
        ratio = f"{per[name] / per['catatonit']:.2f}" if name in per and per.get("catatonit") else "?"
        rows.append([name, counts[(name, small)], counts[(name, large)],
                     f"{per[name]:.1f}" if name in per else "?", ratio])
    section(f"orphan reaping: callgrind instructions, INIT -- perl orphans.pl N (N orphans)",
            ["init", f"N = {small}", f"N = {large}", "per reap", "vs catatonit"], rows)


def wakeups():
    """callgrind's count for `INIT -- perl orphans.pl N serial`: the
    orphans end one at a time, each once the one before is reaped, so
    each is one wake-up of the init's loop; the difference over the
    difference in orphans is the cost of one whole turn."""
    small, large = 200, 2000
    counts, per = callgrind_orphans(small, large, ["serial"])
    rows = []
    for name in REAPERS:
        ratio = f"{per[name] / per['catatonit']:.2f}" if name in per and per.get("catatonit") else "?"
        rows.append([name, counts[(name, small)], counts[(name, large)],
                     f"{per[name]:.0f}" if name in per else "?", ratio])
    section("wake-ups: callgrind instructions, INIT -- perl orphans.pl N serial (one orphan a wake-up)",
            ["init", f"N = {small}", f"N = {large}", "per wake-up", "vs catatonit (bar <= 3)"], rows)


# 4. signal forwarding latency --------------------------------------------
ACK = r"""
import os, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
fd = os.open(sys.argv[1], os.O_WRONLY)
os.write(fd, b"r")
while True:
    signal.sigwait({signal.SIGUSR1})
    os.write(fd, b"a")
"""


def forwarding():
    """Every init runs at once, and the rounds interleave them in a fresh
    random order, so that a busy moment of the shared machine falls on all
    of them alike. The added latency is the median through an init less the
    median of every signal sent straight to a child in the same rounds."""
    n = 200 if QUICK else 1000
    running = {}
    for name, argv in INITS.items():
        fifo = os.path.join(TMP, f"fifo-{name}")
        if os.path.exists(fifo):
            os.unlink(fifo)
        os.mkfifo(fifo)
        p = subprocess.Popen(NS + argv + ["python3", "-c", ACK, fifo],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rd = os.open(fifo, os.O_RDONLY)
        assert os.read(rd, 1) == b"r"
        init_pid = child_of(p.pid)
        # The python process: the only other process in the namespace.
        kid = child_of(init_pid)
        running[name] = (p, rd, init_pid, kid, [], [])
    names = list(running)
    for _ in range(n):
        random.shuffle(names)
        for name in names:
            _, rd, init_pid, kid, via, direct = running[name]
            pair = [(init_pid, via), (kid, direct)]
            random.shuffle(pair)
            for target, out in pair:
                t0 = time.perf_counter()
                os.kill(target, signal.SIGUSR1)
                os.read(rd, 1)
                out.append(time.perf_counter() - t0)
    d = median([t for run in running.values() for t in run[5]])
    rows = [["(direct)", f"{d * 1e6:.1f}", "-", "+0"]]
    for name in INITS:
        p, rd, init_pid, _, via, _ = running[name]
        os.kill(init_pid, signal.SIGKILL)
        p.wait()
        os.close(rd)
        rows.append([name, f"{median(via) * 1e6:.1f}", f"{p99(via) * 1e6:.1f}", f"{(median(via) - d) * 1e6:+.1f}"])
    section(f"signal forwarding: {n} SIGUSR1 through each init, interleaved, each acknowledged",
            ["init", "median µs", "p99 µs", "added µs"], rows)


# 5. restart latency ------------------------------------------------------
def restart():
    stamps = os.path.join(TMP, "stamps")
    script = os.path.join(TMP, "crash.sh")
    with open(script, "w") as f:
        f.write(f'echo "start $(date +%s%N)" >> {stamps}\nsleep 1.2\necho "end $(date +%s%N)" >> {stamps}\nexit 1\n')
    rows = []
    for name in ["cocalc-init", "supervisord"]:
        if os.path.exists(stamps):
            os.unlink(stamps)
        if name == "cocalc-init":
            cmd = NS + [BIN, "-q", "-l", os.path.join(TMP, "restart.log"), "-s", "1", "-p", f"crash=sh {script}"]
        else:
            conf = supervisord_conf([("crash", f"sh {script}")], os.path.join(TMP, "sd-restart.log"), "startsecs=1")
            cmd = NS + ["supervisord", "-c", conf]
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(5.5 if QUICK else 8.5)
        os.kill(child_of(p.pid), signal.SIGKILL)
        p.wait()
        with open(stamps) as f:
            events = [line.split() for line in f]
        gaps = [(int(b[1]) - int(a[1])) / 1e6 for a, b in zip(events, events[1:]) if a[0] == "end" and b[0] == "start"]
        rows.append([name, len(gaps), f"{median(gaps):.1f}" if gaps else "?"])
    section("restart latency: unexpected exit after startsecs → next start (shell to shell)", ["init", "restarts", "median ms"], rows)


# 6. control round trip --------------------------------------------------
def control():
    """`cocalc-init status` and `supervisorctl status` against a live init
    with 3 programs, alternated, wall time of the whole client run."""
    n = 30 if QUICK else 100
    progs = [(f"p{i}", "sleep 1000") for i in range(3)]
    sock = os.path.join(TMP, "rt.sock")
    ours = subprocess.Popen(NS + [BIN, "-q", "-l", os.path.join(TMP, "rt.log"), "--control", sock]
                            + sum((["-p", f"{n}={c}"] for n, c in progs), []),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conf = supervisord_conf(progs, os.path.join(TMP, "sd-rt.log"))
    with open(conf, "a") as f:
        f.write(f"[supervisorctl]\nserverurl=unix://{TMP}/sd.sock\n"
                "[rpcinterface:supervisor]\n"
                "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n")
    theirs = subprocess.Popen(NS + ["supervisord", "-c", conf],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2.5)
    clients = {
        "cocalc-init status": [BIN, "status", "--control", sock],
        "supervisorctl status": ["supervisorctl", "-c", conf, "status"],
    }
    times = {name: [] for name in clients}
    order = list(clients)
    for _ in range(n):
        random.shuffle(order)
        for name in order:
            t0 = time.perf_counter()
            subprocess.run(clients[name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - t0)
    for p in (ours, theirs):
        os.kill(child_of(p.pid), signal.SIGKILL)
        p.wait()
    rows = [[name, f"{median(t) * 1e3:.2f}", f"{p99(t) * 1e3:.2f}"] for name, t in times.items()]
    section(f"control round trip: status of 3 programs, {n} each, alternated",
            ["client", "median ms", "p99 ms"], rows)


# 7. output capture -------------------------------------------------------
LINE = "x" * 99


def capture():
    size = 50_000_000 if QUICK else 200_000_000
    flood = f"yes {LINE} | head -c {size}"
    rows = []
    # cocalc-init: the program's output through pipes, stamped and named.
    log = os.path.join(TMP, "flood.log")
    done = os.path.join(TMP, "flood.done")
    if os.path.exists(log):
        os.unlink(log)
    program = f"sh -c '{flood}; touch {done}; sleep 1000'"

    follow_sock = os.path.join(TMP, "flood.sock")

    def run_once(cmd, settle):
        """Init's own CPU and the wall time until the flood is through; with
        the control socket in `cmd`, a `tail -f` follower reads along."""
        if os.path.exists(done):
            os.unlink(done)
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pid = child_of(p.pid)
        follower = None
        if follow_sock in cmd:
            while not os.path.exists(follow_sock):
                time.sleep(0.001)
            follower = subprocess.Popen([BIN, "tail", "-f", "flood", "--control", follow_sock],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not os.path.exists(done):
            time.sleep(0.01)
        time.sleep(settle)  # let the last bytes be written
        wall = time.perf_counter() - t0
        cpu = cpu_seconds(pid)
        os.kill(pid, signal.SIGKILL)
        p.wait()
        if follower:
            follower.kill()
            follower.wait()
        return cpu, wall

    def measure(who, cmd, settle):
        cpu, wall = run_once(cmd, settle)
        rows.append([who, f"{cpu / size * 1e8:.3f}", f"{size / 1e6 / wall:.0f}"])

    # cocalc-init: the program's output through pipes, stamped and named
    # into the log, and raw into a file of its own (stdout_logfile=),
    # alternated, the median of each: a single run moves by half here.
    raw = os.path.join(TMP, "flood.raw")
    setups = {
        "cocalc-init": NS + [BIN, "-q", "-l", log, "--log-max-bytes", "0", "-p", f"flood={program}"],
        "cocalc-init, stdout_logfile=FILE": NS + [BIN, "-q", "-l", log, "--log-max-bytes", "0",
                                                 "-p", f"flood={program}",
                                                 "-o", f"flood.stdout_logfile={raw}",
                                                 "-o", "flood.stdout_logfile_maxbytes=0"],
        "cocalc-init, a tail -f follower": NS + [BIN, "-q", "-l", log, "--log-max-bytes", "0",
                                                "--control", follow_sock, "-p", f"flood={program}"],
    }
    runs = {who: [] for who in setups}
    for _ in range(3 if QUICK else 5):
        for who, cmd in setups.items():
            for path in (log, raw):
                if os.path.exists(path):
                    os.unlink(path)
            runs[who].append(run_once(cmd, 0.2))
    for who, results_of in runs.items():
        cpu = median([c for c, _ in results_of])
        wall = median([w for _, w in results_of])
        rows.append([who, f"{cpu / size * 1e8:.3f}", f"{size / 1e6 / wall:.0f}"])
    stamped, own, followed = float(rows[0][1]), float(rows[1][1]), float(rows[2][1])
    rows.append(["raw file / stamped log (bar <= 0.5)", f"{own / stamped:.2f}", ""])
    rows.append(["with a follower / without (bar <= 1.2)", f"{followed / stamped:.2f}", ""])
    # supervisord: raw copy of the output to a file.
    out = os.path.join(TMP, "sd-flood.out")
    conf = supervisord_conf([("flood", program)], os.path.join(TMP, "sd-flood.log"),
                            f"stdout_logfile={out}\nstdout_logfile_maxbytes=0")
    measure("supervisord", NS + ["supervisord", "-c", conf], 0.5)
    # cat > file
    t0 = time.perf_counter()
    r = subprocess.run(["bash", "-c", f"{flood} | /usr/bin/time -f %U+%S cat > {TMP}/cat.out"], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    u, s = r.stderr.strip().splitlines()[-1].split("+")
    rows.append(["cat > file", f"{(float(u) + float(s)) / size * 1e8:.3f}", f"{size / 1e6 / wall:.0f}"])
    section(f"output capture: {size // 1_000_000} MB of 100-byte lines", ["who", "CPU s per 100 MB", "MB/s"], rows)


# 7c. scheduled programs ---------------------------------------------------
def scheduled():
    """20 programs with every=1 for a while: how late each run starts after
    its due time (the log's stamps: the exit, then the spawn a second
    later), init's wake-ups per run, and VmRSS at the start and the end;
    then an init with only cron= programs, idle: its wake-ups in 10 s."""
    secs = 20 if QUICK else 60
    log = os.path.join(TMP, "sched.log")
    if os.path.exists(log):
        os.unlink(log)
    progs = sum((["-p", f"j{i}=true", "-o", f"j{i}.every=1"] for i in range(20)), [])
    p = subprocess.Popen(NS + [BIN, "-q", "-l", log, "--control", "none"] + progs + ["--", "sleep", "1000"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid = child_of(p.pid)
    time.sleep(2)
    rss0 = status(pid)["VmRSS"]

    def switches():
        st = status(pid)
        return int(st["voluntary_ctxt_switches"]) + int(st["nonvoluntary_ctxt_switches"])

    w0 = switches()
    with open(log) as f:
        runs0 = f.read().count("spawned: 'j")
    time.sleep(secs)
    w1 = switches()
    rss1 = status(pid)["VmRSS"]
    os.kill(pid, signal.SIGKILL)
    p.wait()

    def ms(line):
        t = line[11:23]
        return ((int(t[0:2]) * 60 + int(t[3:5])) * 60 + int(t[6:8])) * 1000 + int(t[9:12])

    ended, late = {}, []
    with open(log) as f:
        lines = f.read().splitlines()
    runs = sum(1 for l in lines if "spawned: 'j" in l) - runs0
    for line in lines:
        if "INFO exited: j" in line:
            ended[line.split("exited: ")[1].split(" ")[0]] = ms(line)
        elif "spawned: 'j" in line:
            name = line.split("'")[1]
            if name in ended:
                late.append(ms(line) - ended.pop(name) - 1000)
    rows = [["20 programs, every=1", f"{secs} s", runs, f"{(w1 - w0) / max(runs, 1):.2f}",
             f"{median(late):.0f} ms", f"{p99(late):.0f} ms (bar <= 10)", f"{rss0} → {rss1}"]]
    # Only cron= programs, idle: nothing is due for minutes.
    cron = sum((["-p", f"c{i}=true", "-o", f"c{i}.cron=0 3 * * *"] for i in range(5)), [])
    p = subprocess.Popen(NS + [BIN, "-q", "-l", os.path.join(TMP, "cron.log"), "--control", "none"] + cron
                         + ["--", "sleep", "1000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid = child_of(p.pid)
    time.sleep(1.5)
    w0 = switches()
    time.sleep(3 if QUICK else 10)
    rows.append(["5 programs, cron=0 3 * * *, idle", "10 s", 0, f"{switches() - w0} wake-ups", "", "", status(pid)["VmRSS"]])
    os.kill(pid, signal.SIGKILL)
    p.wait()
    section("scheduled programs", ["init", "for", "runs", "wake-ups a run", "late, median",
                                   "late, p99", "VmRSS"], rows)


# 7b. a blocked stdout ----------------------------------------------------
def blocked():
    """Init's stdout is a pipe nobody reads for 10 s while one program
    floods it (stdout_logfile=/dev/stdout): another program's lines still
    reach the log, and `status` still answers."""
    log = os.path.join(TMP, "blocked.log")
    sock = os.path.join(TMP, "blocked.sock")
    for path in (log, sock):
        if os.path.exists(path):
            os.unlink(path)
    read_end, write_end = os.pipe()
    p = subprocess.Popen(NS + [BIN, "-q", "-l", log, "--control", sock,
                               "-p", "flood=sh -c 'while :; do echo a line nobody reads; done'",
                               "-o", "flood.stdout_logfile=/dev/stdout",
                               "-p", "tick=sh -c 'i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.1; done'"],
                         stdout=write_end, stderr=subprocess.DEVNULL)
    os.close(write_end)
    pid = child_of(p.pid)
    time.sleep(1.0)
    t0 = time.perf_counter()
    answers = []
    while time.perf_counter() - t0 < 10.0:
        a = time.perf_counter()
        r = subprocess.run([BIN, "status", "--control", sock], capture_output=True, text=True, timeout=5)
        if r.returncode == 0 and "tick" in r.stdout:
            answers.append(time.perf_counter() - a)
        time.sleep(0.5)
    with open(log, errors="replace") as f:
        ticks = sum(1 for line in f if " tick stdout: tick " in line)
    cpu = cpu_seconds(pid)
    flood_cpu = float("nan")
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        for child in f.read().split():
            with open(f"/proc/{child}/cmdline", "rb") as c:
                if b"nobody reads" in c.read():
                    flood_cpu = cpu_seconds(int(child))
    os.set_blocking(read_end, False)
    drained = 0
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            drained += len(os.read(read_end, 1 << 20))
        except BlockingIOError:
            time.sleep(0.01)
        with open(log, errors="replace") as f:
            if "of program output sent there were dropped" in f.read():
                break
    with open(log, errors="replace") as f:
        counted = "of program output sent there were dropped" in f.read()
    os.kill(pid, signal.SIGKILL)
    p.wait()
    os.close(read_end)
    rows = [
        ["tick lines in the log (one each 0.1 s, 11 s)", ticks],
        ["status answered", f"{len(answers)} of 20, max {max(answers, default=0) * 1e3:.1f} ms"],
        ["init CPU s over the 11 s (reading the flood, dropping it)", f"{cpu:.2f}"],
        ["the flooding program's own CPU s (`while :; do echo …`)", f"{flood_cpu:.2f}"],
        ["drop counted in one WARN once drained", "yes" if counted else "no"],
    ]
    section("a blocked stdout: 10 s of a flood to a pipe nobody reads", ["what", "figure"], rows)


# 8. size and linkage -----------------------------------------------------
def size():
    rows = []
    for name, path in [("cocalc-init", BIN), ("tini-static", "/usr/bin/tini-static"), ("catatonit", "/usr/bin/catatonit"),
                       ("tini", "/usr/bin/tini"), ("dumb-init", "/usr/bin/dumb-init")]:
        kind = subprocess.run(["file", "-L", path], capture_output=True, text=True).stdout
        link = "static-pie" if "static-pie" in kind else "static" if "statically" in kind else "dynamic"
        rows.append([name, os.path.getsize(path), link])
    section("binary size", ["binary", "bytes", "linkage"], rows)


def render(title, header, rows):
    text = f"## {title}\n\n| {' | '.join(header)} |\n|{'---|' * len(header)}\n"
    return text + "".join(f"| {' | '.join(str(c) for c in r)} |\n" for r in rows)


def key(heading):
    """A section's name, without the figures its title carries."""
    return heading.split(":")[0]


def main():
    every = ["start_exit", "idle", "reaping", "orphans", "wakeups", "forwarding", "restart", "control", "capture", "scheduled", "blocked",
             "size"]
    only = sys.argv[2:] or every
    for name in only:
        globals()[name]()
    path = os.path.join(os.path.dirname(__file__), "RESULTS.md")
    head = (f"Made by `bash bench/run.sh{' ' + ' '.join(sys.argv[2:]) if sys.argv[2:] else ''}`"
            f"{' with QUICK=1' if QUICK else ''} on {time.strftime('%Y-%m-%d')}: "
            f"{platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}. "
            "Every init runs as PID 1 of a fresh PID namespace (the orphan count: as a child "
            "subreaper under valgrind); figures are medians of one interleaved run.\n")
    # The hand-written notes, and with a subset of scenarios the sections
    # not run this time, are kept.
    kept, notes = {}, ""
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        parts = old.split("\n## ")
        for part in parts[1:]:
            heading = part.split("\n", 1)[0]
            if heading.startswith("Notes"):
                notes = "## " + part
            else:
                kept[key(heading)] = "## " + part.rstrip("\n") + "\n"
        if sys.argv[2:]:
            made = [line for line in parts[0].splitlines() if line.startswith("Made by")]
            head = made[0] + "\n" if made else head
            head = f"Sections updated by `bash bench/run.sh {' '.join(sys.argv[2:])}` on {time.strftime('%Y-%m-%d')}; the others are of the run named here.\n" + head
    for title, header, rows in results:
        kept[key(title)] = render(title, header, rows)
    with open(path, "w") as f:
        f.write("# Benchmark results\n\n" + head)
        for text in kept.values():
            f.write("\n" + text)
        if notes:
            f.write("\n" + notes.rstrip("\n") + "\n")


main()
