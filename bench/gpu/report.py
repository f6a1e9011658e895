"""results.json and results.md from a bench/gpu/check.sh run (check.sh calls it after each part).

    python3 report.py WORK OUT_DIR

WORK/logs holds records.tsv (check.sh's key<TAB>value lines: statuses, exit codes, seconds,
steps) and every command's log, named as check.sh names them. Whatever is missing is reported
as missing; nothing here may fail on a partial run. Prints results.md.
"""

import csv
import json
import os
import re
import sys


def records(path):
    out = {}
    if os.path.exists(path):
        for line in open(path, errors="replace"):
            key, _, value = line.rstrip("\n").partition("\t")
            if key:
                out[key] = value
    return out


def text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return None


def smi(path):
    """nvidia-smi --format=csv: the first GPU's row as {field: value}."""
    t = text(path)
    if not t:
        return None
    rows = list(csv.reader(t.strip().splitlines()))
    if len(rows) < 2 or len(rows[0]) != len(rows[1]):
        return {"raw": t.strip()[:500]}
    return {k.strip(): v.strip() for k, v in zip(rows[0], rows[1])}


def libtest(path):
    """Counts from a Rust test binary's output; `complete` when its `test result:` line is there."""
    t = text(path)
    if t is None:
        return None
    res = {"passed": 0, "failed": 0, "ignored": 0, "complete": False, "failed_names": []}
    summary = re.findall(r"test result: (\w+)\. (\d+) passed; (\d+) failed; (\d+) ignored", t)
    if summary:
        _, p, f, i = summary[-1]
        res.update(passed=int(p), failed=int(f), ignored=int(i), complete=True)
    else:
        res["passed"] = len(re.findall(r"^test \S+ \.\.\. ok$", t, re.M))
        res["ignored"] = len(re.findall(r"^test \S+ \.\.\. ignored", t, re.M))
        res["failed"] = len(re.findall(r"^test \S+ \.\.\. FAILED$", t, re.M))
    res["failed_names"] = re.findall(r"^test (\S+) \.\.\. FAILED$", t, re.M)
    m = re.search(r"finished in ([\d.]+)s", t)
    if m:
        res["seconds"] = float(m.group(1))
    panics = re.findall(r"panicked at .*?\n(.*)", t)
    if panics:
        res["first_panic"] = panics[0][:300]
    return res


def genc_log(path, warmup):
    """Steps/s between the `step W/N` line and the last `step S/N` line (timestamped)."""
    t = text(path)
    if t is None:
        return None
    stamps, launch, done, last_line, exit_code = {}, None, None, None, None
    for line in t.splitlines():
        parts = line.split(" ", 2)
        if len(parts) < 2:
            continue
        try:
            ts = float(parts[0])
        except ValueError:
            continue
        rest = " ".join(parts[1:])
        if rest == "launch":
            launch = ts
        m = re.match(r"step (\d+)/(\d+)\s", rest + " ")
        if m:
            stamps[int(m.group(1))] = ts
            last_line = rest
        m = re.search(r"done: .*\(([\d.]+) steps/s\)", rest)
        if m:
            done = float(m.group(1))
        m = re.match(r"exit (\d+)$", rest)
        if m:
            exit_code = int(m.group(1))
    res = {"exit": exit_code, "done_steps_per_s": done, "last_log": last_line}
    m = re.search(r"^[\d.]+ device: (.*)$", t, re.M)
    if m:
        res["device"] = m.group(1)
    errors = [line.split(" ", 1)[1] for line in t.splitlines() if " error" in line[:40]]
    if errors:
        res["errors"] = errors[:5]
    if warmup in stamps:
        last = max(stamps)
        if last > warmup and stamps[last] > stamps[warmup]:
            res["steps_per_s"] = round((last - warmup) / (stamps[last] - stamps[warmup]), 4)
            res["timed_steps"] = last - warmup
        if launch is not None:
            res["seconds_to_step_w"] = round(stamps[warmup] - launch, 2)
    return res


def torch_json(path):
    t = text(path)
    if not t:
        return None
    for line in reversed(t.strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def mem_peak(path):
    t = text(path)
    if not t:
        return None
    vals = [int(v) for v in re.findall(r"^\s*(\d+)\s*$", t, re.M)]
    return {"peak_mib": max(vals), "samples": len(vals)} if vals else None


def kernels(path):
    t = text(path)
    if t is None:
        return None
    phases = {}
    for m in re.finditer(r"phase (\S+): (\d+) primitive ops, (\d+) kernels after fusion, peak ([\d.]+) MiB", t):
        phases[m.group(1)] = {"ops": int(m.group(2)), "kernels": int(m.group(3)), "peak_mib": float(m.group(4))}
    return phases or {"error": t.strip()[-300:]}


# Phases run more than once per step (specs' `repeat`): wgan_gp's critic, n_critic = 5.
REPEATS = {"wgan_gp": {"critic": 5}}


def params(path):
    t = text(path)
    m = re.search(r"total trainable params: ([\d,]+)", t or "")
    return int(m.group(1).replace(",", "")) if m else None


def fmt(v, nd=2):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def main():
    work, out_dir = sys.argv[1], sys.argv[2]
    logs = os.path.join(work, "logs")
    rec = records(os.path.join(logs, "records.tsv"))
    L = lambda name: os.path.join(logs, name)
    models = rec.get("models", "").split()

    res = {
        "meta": {k: v for k, v in rec.items() if k in ("started", "elapsed", "budget", "host", "models")},
        "manifest": {k[9:]: v for k, v in rec.items() if k.startswith("manifest.")},
        "setup": {k[6:]: v for k, v in rec.items() if k.startswith("setup.")},
        "gpu": {s: smi(L(f"smi-{s}.csv")) for s in ("start", "bench", "end")},
        "devices": {"status": rec.get("devices.status", "not run")},
        "tests": {},
        "models": {},
    }
    dev = text(L("devices.log"))
    if dev:
        res["devices"]["output"] = dev.strip().splitlines()[:12]
    for name in ("kernels", "executor"):
        t = libtest(L(f"tests-{name}.log")) or {}
        t["status"] = rec.get(f"tests-{name}.status", "not run")
        res["tests"][name] = t
    large = {}
    for key, value in rec.items():
        m = re.match(r"tests-large-(\w+)\.status$", key)
        if m:
            spec = m.group(1)
            t = libtest(L(f"tests-large-{spec}.log")) or {}
            ok = t.get("complete") and t.get("failed") == 0 and t.get("passed", 0) > 0
            large[spec] = {
                "status": value,
                "result": "passed" if ok else ("failed" if t.get("failed") else value),
                "seconds": rec.get(f"tests-large-{spec}.seconds"),
                "first_panic": t.get("first_panic"),
            }
    res["tests"]["large_specs"] = large

    for m in models:
        w = int(rec.get(f"genc-{m}.warmup", 5) or 5)
        g = genc_log(L(f"genc-{m}.log"), w) or {}
        g["status"] = rec.get(f"genc-{m}.status", "not run")
        g["steps"] = rec.get(f"genc-{m}.steps")
        g["memory"] = mem_peak(L(f"mem-genc-{m}.txt"))
        entry = {"genc": g}
        for mode in ("eager", "compile"):
            j = torch_json(L(f"{mode}-{m}.json")) or {}
            j["status"] = rec.get(f"{mode}-{m}.status", "not run")
            j["memory"] = mem_peak(L(f"mem-{mode}-{m}.txt"))
            if j["status"] != "ok":
                err = text(L(f"{mode}-{m}.log"))
                if err:
                    j["stderr_tail"] = err.strip().splitlines()[-3:]
            entry[mode] = j
        k = kernels(L(f"program-{m}.log"))
        entry["program"] = k
        if k and "error" not in k:
            reps = REPEATS.get(m, {})
            entry["kernels_per_step"] = sum(p["kernels"] * reps.get(n, 1) for n, p in k.items())
        entry["genc_params"] = params(L(f"summary-{m}.log"))
        peer = entry["eager"].get("params") or entry["compile"].get("params")
        entry["peer_params"] = sum(peer.values()) if isinstance(peer, dict) else peer
        if entry["genc_params"] and entry["peer_params"]:
            entry["params_match"] = entry["genc_params"] == entry["peer_params"]
        pre = torch_json(L(f"prewarm-{m}.json"))
        if pre:
            entry["prewarm_compile_seconds"] = pre.get("warmup_seconds")
        for mode in ("eager", "compile"):
            a, b = g.get("steps_per_s"), entry[mode].get("steps_per_s")
            entry[f"genc_over_{mode}"] = round(a / b, 4) if a and b else None
        res["models"][m] = entry

    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(res, f, indent=1)

    md = ["# genc GPU check", ""]
    man = res["manifest"]
    md.append(f"- started {res['meta'].get('started')}, {res['meta'].get('elapsed')} s of a "
              f"{res['meta'].get('budget')} s budget; commit {man.get('commit', '?')[:12]} "
              f"({man.get('dirty_files', '?')} modified tracked files at build), built {man.get('built', '?')}")
    s = res["gpu"].get("start") or {}
    md.append(f"- GPU: {s.get('name', '?')}, driver {s.get('driver_version', '?')}; "
              f"Vulkan ICD {res['setup'].get('icd', '?')}")
    for when in ("start", "bench", "end"):
        q = res["gpu"].get(when) or {}
        keys = [k for k in q if k.split(" ")[0] in (
            "pstate", "clocks.current.sm", "clocks.current.memory", "clocks.max.sm", "clocks.max.memory",
            "power.draw", "temperature.gpu", "memory.used", "clocks_event_reasons.active")]
        if q:
            md.append(f"- nvidia-smi at {when}: " + ", ".join(f"{k} {q[k]}" for k in keys))
    d = res["devices"]
    line = next((x for x in d.get("output", []) if x.startswith("--device")), None)
    md.append(f"- `genc devices --device gpu`: {d['status']}" + (f": {line}" if line else ""))
    md.append("")
    md.append("## Tests (on the GPU, --test-threads=1)")
    md.append("")
    md.append("| binary | status | passed | failed | ignored | complete | seconds |")
    md.append("| --- | --- | --- | --- | --- | --- | --- |")
    for name in ("kernels", "executor"):
        t = res["tests"][name]
        md.append(f"| {name} | {t['status']} | {fmt(t.get('passed'))} | {fmt(t.get('failed'))} | "
                  f"{fmt(t.get('ignored'))} | {t.get('complete', False)} | {fmt(t.get('seconds'))} |")
        if t.get("failed_names"):
            md.append(f"| | failed: {', '.join(t['failed_names'])} | | | | | |")
    if large:
        md.append("")
        md.append("executor `large_specs` (ignored by default), one spec per run: " + ", ".join(
            f"{s} {v['result']}" + (f" ({v['seconds']} s)" if v["seconds"] else "") for s, v in large.items()))
        for s, v in large.items():
            if v.get("first_panic"):
                md.append(f"- {s}: `{v['first_panic'][:200]}`")
    md.append("")
    md.append("## Training throughput (steps/s; PyTorch peers on CUDA, eager and torch.compile)")
    md.append("")
    md.append("| model | genc | eager | compile | genc/eager | genc/compile | genc kernels/step "
              "| peak MiB genc / eager / compile (nvidia-smi) | torch max_allocated MiB eager / compile |")
    md.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for m, e in res["models"].items():
        def rate(x):
            r = x.get("steps_per_s")
            return fmt(r) if r else x.get("status", "-")

        def peak(x):
            mm = x.get("memory") or {}
            return fmt(mm.get("peak_mib"))

        md.append(
            f"| {m} | {rate(e['genc'])} | {rate(e['eager'])} | {rate(e['compile'])} | "
            f"{fmt(e['genc_over_eager'], 3)} | {fmt(e['genc_over_compile'], 3)} | {fmt(e.get('kernels_per_step'))} | "
            f"{peak(e['genc'])} / {peak(e['eager'])} / {peak(e['compile'])} | "
            f"{fmt(e['eager'].get('max_memory_allocated_mib'))} / {fmt(e['compile'].get('max_memory_allocated_mib'))} |"
        )
    md.append("")
    md.append("Per model: timed steps after warm-up; genc's seconds from launch to its warm-up step (shader "
              "compilation included); the PyTorch warm-up seconds (compile: torch.compile's, caches filled "
              "by a first run in the background); kernels per phase (`genc compile --emit program`, the "
              "optimizer's one launch per parameter tensor not counted); trainable parameters (genc summary, peer).")
    md.append("")
    for m, e in res["models"].items():
        g = e["genc"]
        phases = e.get("program") or {}
        ph = ", ".join(f"{n} {p['kernels']}" for n, p in phases.items() if isinstance(p, dict))
        md.append(
            f"- {m}: genc {g.get('timed_steps', '-')} steps ({g.get('status')}), {fmt(g.get('seconds_to_step_w'))} s "
            f"to step {rec.get(f'genc-{m}.warmup', '?')}, done-line {fmt(g.get('done_steps_per_s'))} steps/s; "
            f"eager {e['eager'].get('steps', '-')} steps, warm-up {fmt(e['eager'].get('warmup_seconds'))} s; "
            f"compile {e['compile'].get('steps', '-')} steps, warm-up {fmt(e['compile'].get('warmup_seconds'))} s "
            f"(background first run {fmt(e.get('prewarm_compile_seconds'))} s); kernels: {ph or '-'}; "
            f"params genc {fmt(e.get('genc_params'))}, peer {fmt(e.get('peer_params'))}"
            + {True: " (same)", False: " (DIFFERENT)"}.get(e.get("params_match"), "")
        )
        if g.get("last_log"):
            md.append(f"  - genc last log: `{g['last_log'][:160]}`")
        for mode in ("eager", "compile"):
            if e[mode].get("final_losses"):
                md.append(f"  - {mode} final losses: {e[mode]['final_losses']}")
            if e[mode].get("stderr_tail"):
                md.append(f"  - {mode} stderr: `{' | '.join(e[mode]['stderr_tail'])[:300]}`")
        if g.get("errors"):
            md.append(f"  - genc errors: `{' | '.join(g['errors'])[:300]}`")
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
