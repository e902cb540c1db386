#!/usr/bin/env python3
"""Medians over the repetitions of bench.py (rep*.json in RUN_DIR) as one table: figures x
(sipwake, Kamailio, ratio). Also writes RUN_DIR/result.md and RUN_DIR/result.json."""

import glob, json, os, statistics, sys


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main():
    run = sys.argv[1]
    reps = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(run, "rep*.json")))]
    if not reps:
        sys.exit("report.py: no rep*.json in %s" % run)
    rate = reps[0]["rate"]
    wrate = reps[0].get("wake_rate")

    def fig(server, fn):
        out = []
        for r in reps:
            s = r["servers"].get(server)
            if s is not None:
                try:
                    out.append(fn(s))
                except (KeyError, TypeError):
                    out.append(None)
        return med(out)

    rows = [
        ("REGISTER+auth max sustained rate (/s, <1% fail)", lambda s: s["reg_max"], "%.0f"),
        ("REGISTER+auth server CPU s / 1000 @%d/s" % rate,
         lambda s: s["reg_fixed"]["cpu_s_per_1000"], "%.3f"),
        ("REGISTER+auth p50 response (ms) @%d/s" % rate, lambda s: s["reg_fixed"]["p50_ms"], "%.1f"),
        ("REGISTER+auth p99 response (ms) @%d/s" % rate, lambda s: s["reg_fixed"]["p99_ms"], "%.1f"),
        ("RSS (PSS) per 10k bindings (MB)", lambda s: s["rss_per_10k_kb"] / 1024.0, "%.1f"),
        ("Call setup max sustained rate (calls/s)", lambda s: s["call_max"], "%.0f"),
        ("Call server CPU s / 1000 calls @%d/s" % rate,
         lambda s: s["call_fixed"]["cpu_s_per_1000"], "%.3f"),
        ("Call setup p50 (ms, auth INVITE->200) @%d/s" % rate,
         lambda s: s["call_fixed"]["p50_ms"], "%.1f"),
        ("Call setup p99 (ms) @%d/s" % rate, lambda s: s["call_fixed"]["p99_ms"], "%.1f"),
    ]
    # Latency at 80% of each server's own max sustained rate (the p99 < 2 ms target).
    at80 = lambda key, q: (lambda s: s.get(key, {}).get(q))
    rows += [
        ("REGISTER+auth p99 (ms) @80% of own max", at80("reg_80", "p99_ms"), "%.1f"),
        ("REGISTER+auth rate used for that (/s)", at80("reg_80", "rate"), "%.0f"),
        ("Call setup p99 (ms) @80% of own max", at80("call_80", "p99_ms"), "%.1f"),
        ("Call rate used for that (/s)", at80("call_80", "rate"), "%.0f"),
    ]
    # The wake path (sipwake only: INVITE -> push to sipwake-fakepns -> REGISTER -> INVITE
    # forwarded -> 200, bench/load/wakefarm.py). Latencies are the farm's receive timestamps.
    wake = lambda key, q: (lambda s: s["wake_fixed"].get(key, {}).get(q))
    rows += [
        ("Wake path max sustained rate (calls/s)", lambda s: s["wake_max"], "%.0f", True),
        ("Wake server CPU s / 1000 woken calls @%s/s" % wrate,
         lambda s: s["wake_fixed"]["cpu_s_per_1000"], "%.3f", True),
    ]
    for label, key in (("INVITE in -> push received", "invite_to_push"),
                       ("INVITE in -> push at the fake", "invite_to_push_rx"),
                       ("REGISTER 200 -> INVITE out", "reg200_to_invite")):
        rows += [("Wake %s %s (ms) @%s/s" % (label, q[:3], wrate), wake(key, q), "%.2f", True)
                 for q in ("p50_ms", "p99_ms")]
    rows += [
        ("Wake call setup p50 / p99 (ms, auth INVITE->200) @%s/s" % wrate,
         lambda s: (s["wake_fixed"]["call_setup"]["p50_ms"],
                    s["wake_fixed"]["call_setup"]["p99_ms"]), "%.1f / %.1f", True),
    ]
    table, result = [], {}
    for row in rows:
        label, fn, fmt = row[:3]
        if len(row) > 3:  # sipwake only
            vals = [fn(r["servers"]["sipwake"]) for r in reps
                    if "wake_fixed" in r["servers"].get("sipwake", {})]
            if vals and isinstance(vals[0], tuple):  # pairs: median of each member
                a = tuple(med([v[i] for v in vals]) for i in range(len(vals[0])))
                a = None if None in a else a
            else:
                a = med(vals)
            result[label] = {"sipwake": a, "kamailio": None, "ratio": None}
            table.append((label, fmt % a if a is not None else "-", "n/a", "n/a"))
            continue
        a, b = fig("sipwake", fn), fig("kamailio", fn)
        ratio = (a / b) if (a is not None and b) else None
        result[label] = {"sipwake": a, "kamailio": b, "ratio": ratio}
        table.append((label, fmt % a if a is not None else "-", fmt % b if b is not None else "-",
                      "%.2f" % ratio if ratio is not None else "-"))
    head = ("figure (median of %d rep%s)" % (len(reps), "" if len(reps) == 1 else "s"),
            "sipwake", "Kamailio", "sipwake/Kamailio")
    w = [max(len(r[i]) for r in table + [head]) for i in range(4)]
    line = lambda r: "| " + " | ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i])
                                       for i, c in enumerate(r)) + " |"
    md = [line(head), "|" + "|".join("-" * (x + 2) for x in w) + "|"] + [line(r) for r in table]
    text = "\n".join(md)
    print(text)
    print("REGISTER/call ms figures come from sipp's millisecond-resolution response times; wake "
          "latencies from wakefarm.py's clock (include loopback hops and the fake APNs); the "
          "machine's load skews every figure (see bench/load/README.md).")
    with open(os.path.join(run, "result.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(run, "result.json"), "w") as f:
        json.dump({"reps": len(reps), "rate": rate, "wake_rate": wrate, "figures": result}, f,
                  indent=1)
    print("results: %s/result.md, result.json (raw: rep*.json, sipp logs per run)" % run)


if __name__ == "__main__":
    main()
