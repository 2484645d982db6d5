"""Fit the polynomial behind sknngp's branch-free arcsin / arccos.

asin(s) = s + s * z * P(z), z = s**2, s in [0, 1/2]. P is the degree-12
Chebyshev approximation of (asin(sqrt(z)) - sqrt(z)) / z**1.5 on [0, 1/4],
computed with mpmath at 50 digits; its coefficients (highest degree first) are
pasted into sknngp/kernels/_nonlinear.py. Run: python tools/fit_asin.py
"""
import mpmath as mp
import numpy as np

mp.mp.dps = 50


def g(z):
    if z == 0:
        return mp.mpf(1) / 6
    s = mp.sqrt(z)
    return (mp.asin(s) - s) / (z * s)


coef, err = mp.chebyfit(g, [0, 0.25], 13, error=True)
coef = [float(c) for c in coef]
s = np.linspace(0, 0.5, 4001)
z = s * s
p = np.zeros_like(z)
for c in coef:
    p = p * z + c
approx = s + s * z * p
exact = np.array([float(mp.asin(mp.mpf(float(v)))) for v in s])
rel = np.max(np.abs(approx - exact) / np.maximum(exact, 1e-300))
print("coefficients:", ",\n".join(repr(c) for c in coef))
print(f"fit error {float(err):.2e}; float64 max relative error {rel:.2e}")
