"""Medians of a bench run's results.tsv (target, round, rps, p50, p99, server_cpu_pct,
rss_kib), and the ratios asked for as TARGET:BASE arguments, both on the medians and per
round (pairs run back to back compare best on a noisy machine).

    python3 bench/summary.py results.tsv local:none redis:none_c
"""
import csv
import statistics
import sys


def ms(v):
    v = v.strip()
    for unit, f in (('ms', 1), ('us', 1e-3), ('s', 1e3)):
        if v.endswith(unit):
            return float(v[:-len(unit)]) * f
    return float(v)


rows = list(csv.DictReader(open(sys.argv[1]), delimiter='\t'))
pairs = [a.split(':') for a in sys.argv[2:]]
targets = []
for r in rows:
    if r['target'] not in targets:
        targets.append(r['target'])
summary = {}
for t in targets:
    rs = [r for r in rows if r['target'] == t]
    rps = [float(r['rps']) for r in rs]
    summary[t] = dict(
        rps=statistics.median(rps),
        spread=(max(rps) - min(rps)) / 2 / statistics.median(rps) * 100,
        p50=statistics.median(ms(r['p50']) for r in rs),
        p99=statistics.median(ms(r['p99']) for r in rs),
        cpu=statistics.median(float(r['server_cpu_pct']) for r in rs),
        eff=statistics.median(float(r['rps']) / max(float(r['server_cpu_pct']), 1e-9) * 100 / 1000 for r in rs),
    )
rounds = sorted({r['round'] for r in rows}, key=int)
print(f"# {len(rounds)} rounds (median)")
print()
print("| target | rps | spread | p50 | p99 | Portico CPU | k req per Portico CPU-s |")
print("|---|---:|---:|---:|---:|---:|---:|")
for t in targets:
    s = summary[t]
    print(f"| {t} | {s['rps']:,.0f} | ±{s['spread']:.1f}% | {s['p50']:.2f} ms | {s['p99']:.2f} ms | "
          f"{s['cpu']:.0f}% | {s['eff']:.1f} |")
print()
for t, base in pairs:
    per_round = []
    for r in rounds:
        a = [float(x['rps']) / float(x['server_cpu_pct']) for x in rows if x['target'] == t and x['round'] == r]
        b = [float(x['rps']) / float(x['server_cpu_pct']) for x in rows if x['target'] == base and x['round'] == r]
        if a and b:
            per_round.append(a[0] / b[0])
    print(f"- {t} / {base} (CPU-s): {summary[t]['eff'] / summary[base]['eff']:.2f} on the medians; per round "
          + ", ".join(f"{p:.2f}" for p in per_round) + f" (median {statistics.median(per_round):.2f}); "
          f"p99 {summary[t]['p99'] - summary[base]['p99']:+.2f} ms")
