#!/usr/bin/env python3
"""Chaos run: the whole loop of rlhf under SIGKILL at random moments, resumed as a user would.

    python3 Tests/Chaos/chaos.py [--kills 120] [--seed 1] [--rlhf PATH] [--keep]

It builds nothing: run `swift build -c release` first (the default binary is .build/release/rlhf).
In a scratch folder it runs init, prompts add, generate, label (a simulated labeler typing into the
real `rlhf label` screen through a pseudo-terminal), train-reward, ppo and dpo on a small random model,
and kills each stage with SIGKILL at random moments. After each kill it does what a user would:
reruns the command (`init --force`, `prompts add`, `generate`, `label`, `train-reward`) or resumes it
(`ppo --resume`, `dpo --resume`). Then it checks:

  - `PRAGMA integrity_check` is ok and every registered checkpoint exists with the SHA-256 it was
    registered with (`rlhf status --check`);
  - no stage run is left "running";
  - every ranking the simulated labeler saw confirmed on screen is in the database exactly once, and
    no item is ranked twice by the labeler;
  - the PPO and DPO metrics of the killed-and-resumed runs equal, value for value, those of
    uninterrupted runs with the same seeds, each started from a copy of the run taken just before.

It prints one summary line and exits 0 when every check passes. Standard library only.
"""
import argparse
import fcntl
import json
import os
import pty
import random
import re
import select
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import termios
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PPO_ARGS = ["--batch", "8", "--response-length", "16", "--save-every", "1", "--seed", "7"]
DPO_ARGS = ["--policy", "base", "--epochs", "3", "--batch", "8", "--save-every", "1", "--lr", "1e-4", "--seed", "3"]
STAGES = ["init", "prompts", "generate", "label", "train-reward", "ppo", "dpo"]
RESUMED = ["ppo", "dpo"]
SHARE = {"init": 0.05, "prompts": 0.05, "generate": 0.15, "label": 0.25, "train-reward": 0.2, "ppo": 0.2, "dpo": 0.1}


class Chaos:
    def __init__(self, args):
        self.rlhf = os.path.abspath(args.rlhf)
        self.rng = random.Random(args.seed)
        self.work = args.dir or tempfile.mkdtemp(prefix="rlhf-chaos-")
        os.makedirs(self.work, exist_ok=True)
        self.run = os.path.join(self.work, "chaos-run")
        self.kills = {s: 0 for s in STAGES}
        self.attempts = {s: 0 for s in STAGES}
        self.reported = []          # prompt texts whose ranking the label screen confirmed
        self.verbose = args.verbose
        self.log = open(os.path.join(self.work, "chaos.log"), "a")
        self.prompts = ["chaos prompt %03d: say something kind about the weather" % i for i in range(args.prompts)]
        self.durations = {}
        self.ppo_iterations = args.ppo_iterations

    # -- running the binary ------------------------------------------------------------------
    def say(self, msg):
        self.log.write(msg + "\n"); self.log.flush()
        if self.verbose:
            print(msg, file=sys.stderr)

    def cmd(self, args, run=None):
        return [self.rlhf] + args + ["--run", run or self.run]

    def call(self, args, run=None, check=True):
        """Runs a command to completion; returns (status, stdout, stderr)."""
        p = subprocess.run(self.cmd(args, run), cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        self.say("$ rlhf %s -> %d %s" % (" ".join(args), p.returncode, p.stderr.strip()[-300:]))
        if check and p.returncode != 0:
            raise SystemExit("chaos: `rlhf %s` failed (%d):\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p.returncode, p.stdout, p.stderr

    def attempt(self, stage, args, delay):
        """Starts a command and SIGKILLs it after `delay` seconds; True when it was killed
        (False when it ended first)."""
        self.attempts[stage] += 1
        p = subprocess.Popen(self.cmd(args), cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            p.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            p.wait()
        err = p.stderr.read().decode(errors="replace"); p.stderr.close()
        killed = p.returncode == -signal.SIGKILL
        if not killed and p.returncode != 0:
            self.say("  %s ended with %d before the kill: %s" % (stage, p.returncode, err.strip()[-300:]))
        if killed:
            self.kills[stage] += 1
        self.say("%s attempt %d, kill after %.2fs: %s" % (stage, self.attempts[stage], delay, "killed" if killed else "ended (%d)" % p.returncode))
        return killed, p.returncode

    def timed(self, args, run):
        t = time.time()
        self.call(args, run)
        return time.time() - t

    # -- the stages --------------------------------------------------------------------------
    def calibrate(self):
        """Times each stage once, uninterrupted, in a scratch run, so that kill moments can be
        drawn over each stage's real duration on this machine."""
        cal = os.path.join(self.work, "calibration")
        d = self.durations
        d["init"] = self.timed(["init", "--base", "random:S", "--force"], cal)
        d["prompts"] = self.timed(["prompts", "add", self.prompt_file()], cal)
        d["generate"] = self.timed(["generate", "--per-prompt", "2", "--max-new-tokens", "32"], cal)
        self.call(["label", "--simulate", "length", "--target-length", "4"], cal)
        d["train-reward"] = self.timed(["train-reward", "--epochs", "2"], cal)
        # Three iterations: kills are drawn over that span, so that a resumed PPO run is killed
        # again within an iteration or two, many times before it can finish.
        d["ppo"] = self.timed(["ppo", "--iterations", "3"] + PPO_ARGS, cal)
        d["dpo"] = self.timed(["dpo"] + DPO_ARGS, cal) / 2     # kills mostly within its first half
        shutil.rmtree(cal, ignore_errors=True)
        self.say("durations: " + json.dumps({k: round(v, 2) for k, v in d.items()}))

    def prompt_file(self):
        path = os.path.join(self.work, "prompts.txt")
        with open(path, "w") as f:
            f.write("\n".join(self.prompts) + "\n")
        return path

    def killed_then_done(self, stage, target, args, rerun_args=None, max_attempts=None, resumable=False):
        """Kills `stage` until `target` kills (or attempts run out), then runs it to the end."""
        rerun_args = rerun_args or args
        max_attempts = max_attempts or 4 * target + 4
        first = True
        while self.kills[stage] < target and self.attempts[stage] < max_attempts:
            killed, rc = self.attempt(stage, args if first else rerun_args, self.delay(stage, resumable))
            first = False
            if resumable and not killed and rc == 0:
                return      # the work is done; a rerun would have nothing left to kill
        self.call(rerun_args)

    def delay(self, stage, resumable):
        """When to kill: over the stage's whole duration for a stage that starts over when rerun;
        for one that continues where it stopped (generate, ppo --resume), mostly early, so that
        it is killed many times before it can finish, and sometimes later, mid-work."""
        d = self.durations[stage]
        if not resumable:
            return self.rng.uniform(0.01, d * 1.05)
        return self.rng.uniform(0.01, 0.3 * d) if self.rng.random() < 0.7 else self.rng.uniform(0.3 * d, d)

    def label(self, target):
        """The simulated labeler: types into `rlhf label` in a pseudo-terminal, counts a ranking as
        submitted only when the screen confirms it, and is killed after 0 or 1 confirmed submits,
        sometimes in the middle of the next one."""
        done = False
        attempts = 0
        while not done and attempts < 6 * target + 10:
            attempts += 1
            self.attempts["label"] += 1
            stop_after = self.rng.randint(0, 1) if self.kills["label"] < target else None
            outcome = self.label_session(stop_after)
            if outcome == "killed":
                self.kills["label"] += 1
            elif outcome == "done":
                done = True
        if not done:
            raise SystemExit("chaos: the labeler never finished")

    def label_session(self, stop_after):
        pid, fd = pty.fork()
        if pid == 0:
            os.environ["TERM"] = "xterm-256color"
            os.chdir(REPO)
            os.execv(self.rlhf, self.cmd(["label", "--annotator", "chaos", "--order", "fixed"]))
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        out = bytearray()
        mark = 0

        def pump(timeout):
            r, _, _ = select.select([fd], [], [], timeout)
            if r:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    return False
                if not chunk:
                    return False
                out.extend(chunk)
            return True

        def wait_for(patterns, timeout=20):
            deadline = time.time() + timeout
            while time.time() < deadline:
                text = out[mark:].decode(errors="replace")
                for p in patterns:
                    if p in text:
                        return p
                if not pump(0.05):
                    text = out[mark:].decode(errors="replace")
                    return next((p for p in patterns if p in text), None)
            return None

        def current_prompt():
            found = re.findall(r"chaos prompt \d{3}: say something kind about the weather", out[mark:].decode(errors="replace"))
            return found[-1] if found else None

        def finish(kill):
            if kill:
                os.kill(pid, signal.SIGKILL)
            else:
                os.write(fd, b"q")
            deadline = time.time() + 20
            while time.time() < deadline:
                pump(0.05)
                wpid, status = os.waitpid(pid, os.WNOHANG)
                if wpid:
                    os.close(fd)
                    return status
            os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0); os.close(fd)
            raise SystemExit("chaos: rlhf label did not exit")

        confirmed = 0
        seen = wait_for(["chaos prompt", "nothing to label", "Every item is labeled"])
        if seen != "chaos prompt":
            finish(kill=False)
            if seen in ("nothing to label", "Every item is labeled"):
                return "done"
            raise SystemExit("chaos: the label screen did not show an item:\n" + out.decode(errors="replace")[-2000:])
        while True:
            prompt = current_prompt()
            if prompt is None:
                wait_for(["chaos prompt"])
                prompt = current_prompt()
            if stop_after is not None and confirmed >= stop_after:
                # Kill in the middle of the next submit, or just before it.
                mark = len(out)
                if self.rng.random() < 0.7:
                    os.write(fd, b"1\r")
                time.sleep(self.rng.uniform(0, 0.03))
                finish(kill=True)
                self.say("label: killed after %d confirmed submits" % confirmed)
                return "killed"
            mark = len(out)
            os.write(fd, b"1\r")       # completion 1 best; Enter ranks the other last and submits
            seen = wait_for(["saved: ranked", "Every item is labeled", "NOT SAVED"])
            if seen is None or seen == "NOT SAVED":
                finish(kill=True)
                raise SystemExit("chaos: a submit was not confirmed:\n" + out[mark:].decode(errors="replace")[-2000:])
            self.reported.append(prompt)
            confirmed += 1
            if seen == "Every item is labeled":
                finish(kill=False)
                return "done"

    def fresh_args(self, stage):
        if stage == "ppo":
            return ["ppo", "--iterations", str(self.ppo_iterations)] + PPO_ARGS
        return ["dpo"] + DPO_ARGS

    def resumed(self, stage, target):
        """Kills PPO or DPO repeatedly, resuming each time with --resume (a fresh run only while
        none of that stage exists yet), then resumes it to the end."""
        def args():
            return [stage, "--resume"] if self.has_stage_run(stage) else self.fresh_args(stage)
        while self.kills[stage] < target and self.attempts[stage] < 4 * target + 4:
            killed, rc = self.attempt(stage, args(), self.delay(stage, True))
            if not killed and rc == 0:
                return
        status, out, err = self.call(args(), check=False)
        if status != 0 and "nothing to resume" not in err:
            raise SystemExit("chaos: the final %s resume failed:\n%s" % (stage, err))

    def has_stage_run(self, stage):
        con = sqlite3.connect(os.path.join(self.run, "run.sqlite"))
        try:
            return con.execute("SELECT COUNT(*) FROM stage_runs WHERE stage = ?", (stage,)).fetchone()[0] > 0
        finally:
            con.close()

    def stage_metrics(self, run, stage):
        con = sqlite3.connect(os.path.join(run, "run.sqlite"))
        try:
            sid = con.execute("SELECT id FROM stage_runs WHERE stage = ? AND status = 'succeeded' ORDER BY id DESC LIMIT 1", (stage,)).fetchone()
            if sid is None:
                return None
            rows = con.execute("SELECT name, step, value FROM metrics WHERE stage_run_id = ? AND name NOT LIKE 'time/%'", sid).fetchall()
            return {(n, s): v for n, s, v in rows}
        finally:
            con.close()

    # -- checks ------------------------------------------------------------------------------
    def check(self):
        problems = []
        status, out, err = self.call(["status", "--check", "--json"], check=False)
        verdict = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"ok": False, "problems": [err]}
        if not verdict.get("ok"):
            problems += ["check: " + p for p in verdict.get("problems", [])]
        _, out, _ = self.call(["status", "--json"])
        running = json.loads(out)["stage_runs"].get("running", 0)
        if running:
            problems.append("%d stage runs left running" % running)

        con = sqlite3.connect(os.path.join(self.run, "run.sqlite"))
        rows = con.execute("""SELECT p.text, COUNT(*) FROM rankings r JOIN prompts p ON p.id = r.prompt_id
                              WHERE r.annotator = 'chaos' AND r.replaced_by IS NULL GROUP BY p.text""").fetchall()
        con.close()
        stored = dict(rows)
        self.stored = sum(stored.values())
        lost = [p for p in set(self.reported) if stored.get(p, 0) == 0]
        duplicated = [p for p, n in stored.items() if n > 1]
        reported_twice = [p for p in set(self.reported) if self.reported.count(p) > 1]
        problems += ["lost ranking: " + p for p in lost]
        problems += ["ranked twice in the database: " + p for p in duplicated]
        problems += ["shown again and ranked twice: " + p for p in reported_twice]
        if len(stored) != len(self.prompts):
            problems.append("%d of %d items ranked" % (len(stored), len(self.prompts)))

        compared = {}
        for stage in RESUMED:
            mine, ref = self.stage_metrics(self.run, stage), self.stage_metrics(self.references[stage], stage)
            if not mine or not ref:
                problems.append("a %s run did not finish" % stage)
                compared[stage] = (0, -1)
                continue
            differing = sum(1 for k in set(mine) | set(ref) if mine.get(k, "missing") != ref.get(k, "missing"))
            compared[stage] = (len(mine), differing)
            if differing:
                problems.append("%d %s metric values differ from the uninterrupted run" % (differing, stage))
        return problems, verdict, lost, duplicated, compared

    # -- the whole thing ---------------------------------------------------------------------
    def go(self, total):
        start = time.time()
        self.calibrate()
        share = {s: max(1, round(total * SHARE[s])) for s in STAGES}
        share["ppo"] = max(1, total - sum(v for s, v in share.items() if s != "ppo"))

        def target(stage):
            # A stage too quick to be killed as often as planned hands the rest to the next ones.
            before = STAGES[:STAGES.index(stage)]
            return share[stage] + max(0, sum(share[s] for s in before) - sum(self.kills[s] for s in before))
        init = ["init", "--base", "random:S"]
        self.killed_then_done("init", target("init"), init + ["--force"], max_attempts=3 * share["init"] + 6)
        self.killed_then_done("prompts", target("prompts"), ["prompts", "add", self.prompt_file()], max_attempts=3 * share["prompts"] + 6)
        self.killed_then_done("generate", target("generate"), ["generate", "--per-prompt", "2", "--max-new-tokens", "32"], resumable=True)
        self.label(target("label"))
        self.killed_then_done("train-reward", target("train-reward"), ["train-reward", "--epochs", "2"])
        self.references = {}
        for stage in RESUMED:
            # The uninterrupted run to compare with, from a copy of the run as it is now.
            ref = self.references[stage] = os.path.join(self.work, "reference-" + stage)
            shutil.rmtree(ref, ignore_errors=True)
            shutil.copytree(self.run, ref)
            self.call(self.fresh_args(stage), run=ref)
            self.resumed(stage, target(stage))
        problems, verdict, lost, duplicated, compared = self.check()
        kills = sum(self.kills.values())
        by_stage = ", ".join("%s %d" % (s, self.kills[s]) for s in STAGES)
        ok = not problems and kills >= total
        metrics = "; ".join("%s metrics: %d values, %d differ from the uninterrupted run" % (s.upper(), n, max(d, 0)) for s, (n, d) in compared.items())
        print("chaos %s: %d kills (%s) in %.0f s; rankings: %d confirmed on screen, %d stored, %d lost, %d duplicated; checkpoints: %d verified, %s; "
              "stage runs left running: %d; %s"
              % ("PASS" if ok else "FAIL", kills, by_stage, time.time() - start, len(set(self.reported)), self.stored, len(lost), len(duplicated),
                 verdict.get("checkpoints", 0), "integrity ok" if verdict.get("integrity") == "ok" else "INTEGRITY " + str(verdict.get("integrity")),
                 verdict.get("running_stage_runs", 0), metrics))
        if kills < total:
            problems.append("only %d of the %d kills landed (the stages ended before the kill); rerun with another --seed" % (kills, total))
        for p in problems:
            print("  " + p)
        return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--kills", type=int, default=120, help="kills to land over all stages (default 120)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the kill moments (default 1)")
    ap.add_argument("--prompts", type=int, default=60, help="prompts to generate for and label (default 60)")
    ap.add_argument("--ppo-iterations", type=int, default=24, help="PPO iterations (default 24)")
    ap.add_argument("--rlhf", default=os.path.join(REPO, ".build", "release", "rlhf"), help="the rlhf binary")
    ap.add_argument("--dir", help="work folder (default: a new temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--verbose", action="store_true", help="print every step to stderr")
    args = ap.parse_args()
    if not os.access(args.rlhf, os.X_OK):
        sys.exit("chaos: %s is not an executable; run `swift build -c release` first or pass --rlhf" % args.rlhf)
    chaos = Chaos(args)
    ok = False
    try:
        ok = chaos.go(args.kills)
    finally:
        if ok and not args.keep and args.dir is None:
            shutil.rmtree(chaos.work, ignore_errors=True)
        else:
            print("  work folder: " + chaos.work, file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
