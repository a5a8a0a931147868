#!/usr/bin/env python3
"""Reference values for the 95% Wilson score interval, computed from its definition rather than
its closed form: the interval is every p whose score test does not reject p at the 5% level,
|p_hat - p| <= z * sqrt(p * (1 - p) / n), so its ends are found here by bisection on each side of
p_hat. z is the 97.5% quantile of the standard normal, found by bisection on math.erf.
A success may count a half (a tie, when ties count half a win). Standard library only.

Run: python3 wilson_reference.py > wilson_reference.txt
"""
import math


def normal_quantile(q):
    lo, hi = 0.0, 10.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


Z = normal_quantile(0.975)


def rejects(p, p_hat, n):
    return abs(p_hat - p) > Z * math.sqrt(p * (1 - p) / n)


def end(p_hat, n, toward):
    # Bisect between p_hat (accepted) and `toward` (0 or 1) for the last accepted p.
    inside, outside = p_hat, toward
    if not rejects(outside, p_hat, n):
        return outside
    for _ in range(200):
        mid = (inside + outside) / 2
        if rejects(mid, p_hat, n):
            outside = mid
        else:
            inside = mid
    return (inside + outside) / 2


print("# successes trials low high   (z = %.9f)" % Z)
for successes, trials in [(8, 10), (0, 20), (7, 10), (3.5, 5), (12.5, 20), (81, 263), (1, 1), (50, 100)]:
    p_hat = successes / trials
    print("%g %d %.6f %.6f" % (successes, trials, end(p_hat, trials, 0.0), end(p_hat, trials, 1.0)))
