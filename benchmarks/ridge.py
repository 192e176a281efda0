"""berg ``RidgeCV`` vs himalaya vs sklearn, side by side in one run.

Problems (float32, 25 alphas 10^-12…10^12, 5 contiguous folds, one alpha per target by CV correlation,
fit_intercept; features with a decaying spectrum, targets with SNR spread over two decades):
  (a) n = 8,000 samples, p = 512 features, 2,000 targets
  (b) n = 3,000 samples, p = 8,192 features, 5,000 targets

  (c) banded ridge, primal form: n = 2,000 samples, three feature spaces of 128 + 64 + 32 features,
      500 targets, 10 random-search draws (the same draws for both engines), alpha by CV r2
  (d) banded ridge, kernel form: n = 600 samples, two feature spaces of 512 + 256 features, 300 targets,
      5 draws

Rows per problem (a), (b):
  berg RidgeCV (numpy)               factor once per fold, per alpha a rescale + one GEMM
  berg RidgeCV (torch CPU)           the same algorithm on torch tensors (when torch is installed)
  himalaya RidgeCV (svd)             (a): same folds (KFold(5)) and score (correlation_score)
  himalaya KernelRidgeCV (linear)    (b): himalaya's own recommendation when p > n; same folds + score
  sklearn RidgeCV(alpha_per_target)  efficient leave-one-out (GCV), NOT 5-fold: a timing reference with
                                     a different CV; its alpha agreement is shown for information only
Columns: seconds, ratio to berg's seconds, max |coef − berg coef|, max |coef − float64 sklearn refit
at that method's own chosen alphas| on 100 targets (accuracy of each method's refit; ``Ridge(alpha=a)``
for p <= n, ``KernelRidge(alpha=a, kernel="precomputed")`` on the centred kernel for p > n), fraction of targets with berg's alpha, and with berg's alpha or a CV tie (the method's alpha
scores within 1e-5 of the best on berg's CV curve; correlation is flat in alpha at both ends of the grid).

Rows of (c), (d): berg ``BandedRidgeCV`` (``engine="berg"``: each draw solved by ``RidgeCV``'s factor-once
machinery) and ``engine="himalaya"`` (``himalaya.ridge.BandedRidgeCV``), side by side: seconds, the ratio,
and the largest differences of coef / deltas / CV scores between the two.

Run: ``flock /tmp/berg-heavy.lock python benchmarks/ridge.py`` (full sizes) or ``--quick`` (small
sizes, seconds); ``--only a``, ``--skip-sklearn``, ``--threads 1`` (BLAS threads for all methods; use
on a busy machine for steadier timings).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

ALPHAS = np.logspace(-12, 12, 25)


def make_problem(n: int, p: int, t: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Correlated features (decaying spectrum, like LM features) and targets with SNR spread over targets."""
    rng = np.random.default_rng(seed)
    scales = 1.0 / np.sqrt(1.0 + np.arange(p) / 8.0)
    X = (rng.standard_normal((n, p)) * scales).astype(np.float32)
    W = rng.standard_normal((p, t)).astype(np.float32) / np.sqrt(p)
    snr = np.logspace(-1.5, 0.5, t).astype(np.float32)
    Y = (X @ W) * snr + rng.standard_normal((n, t)).astype(np.float32)
    return X, Y.astype(np.float32)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def sklearn_refit(X64: np.ndarray, Y64: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """float64 reference coef (p, targets) at the given per-target alphas, one sklearn fit per distinct alpha.

    p <= n: ``Ridge(alpha=a)`` (fit_intercept). p > n: ``KernelRidge(alpha=a, kernel="precomputed")`` on the
    centred linear kernel (the same solution in dual form; the kernel is computed once), primal coef =
    X_cᵀ · dual_coef.
    """
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.linear_model import Ridge

    n, p = X64.shape
    coef = np.empty((p, Y64.shape[1]))
    if p > n:
        Xc = X64 - X64.mean(0)
        Yc = Y64 - Y64.mean(0)
        K = Xc @ Xc.T
    for a in np.unique(alphas):
        cols = np.flatnonzero(alphas == a)
        if p > n:
            coef[:, cols] = Xc.T @ KernelRidge(alpha=float(a), kernel="precomputed").fit(K, Yc[:, cols]).dual_coef_.reshape(n, len(cols))
        else:
            coef[:, cols] = Ridge(alpha=float(a)).fit(X64, Y64[:, cols]).coef_.reshape(len(cols), -1).T
    return coef


def run_problem(name: str, n: int, p: int, t: int, *, folds: int, sklearn: bool, himalaya_primal: bool, target_batch: int) -> list[dict]:
    """Fit every method on one problem; rows of seconds / coef differences / alpha agreement."""
    import himalaya.backend as hb
    from himalaya.kernel_ridge import KernelRidgeCV
    from himalaya.ridge import RidgeCV as HRidgeCV
    from himalaya.scoring import correlation_score
    from sklearn.model_selection import KFold

    from berg_core.fit.ridge import RidgeCV

    X, Y = make_problem(n, p, t)
    RidgeCV(ALPHAS, cv=folds).fit(X[:200, :50], Y[:200, :20])  # warm-up: imports, thread pools
    print(f"\n({name}) n={n}, p={p}, targets={t}, {len(ALPHAS)} alphas, {folds} folds, float32", flush=True)
    fits: list[tuple[str, float, np.ndarray, np.ndarray, str]] = []  # (method, seconds, coef, alphas, note)

    sec, berg = timed(lambda: RidgeCV(ALPHAS, cv=folds, scoring="correlation", target_batch=target_batch).fit(X, Y))
    fits.append(("berg RidgeCV", sec, berg.coef_, berg.best_alphas_, f"{berg.solver_} solver"))
    print(f"  berg RidgeCV: {sec:.1f} s", flush=True)

    try:
        import torch

        threads = torch.get_num_threads()
        sec, bt = timed(lambda: RidgeCV(ALPHAS, cv=folds, scoring="correlation", target_batch=target_batch, backend="torch",
                                        device="cpu").fit(X, Y))
        fits.append(("berg RidgeCV (torch CPU)", sec, bt.coef_, bt.best_alphas_, f"torch {torch.__version__}, {threads} threads"))
        print(f"  berg RidgeCV torch: {sec:.1f} s", flush=True)
    except ImportError:
        pass

    hb.set_backend("numpy")
    params = dict(score_func=correlation_score, n_alphas_batch=5, n_targets_batch=target_batch)
    if himalaya_primal:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sec, hr = timed(lambda: HRidgeCV(ALPHAS.astype(np.float32), fit_intercept=True, cv=KFold(folds), solver_params=params).fit(X, Y))
        fits.append(("himalaya RidgeCV (svd)", sec, np.asarray(hr.coef_), np.asarray(hr.best_alphas_), "same folds + score"))
        print(f"  himalaya RidgeCV: {sec:.1f} s", flush=True)
    if p > n // 2:
        sec, hk = timed(lambda: KernelRidgeCV(ALPHAS.astype(np.float32), kernel="linear", fit_intercept=True, cv=KFold(folds),
                                              solver_params=params).fit(X, Y))
        coef = (X - X.mean(0)).T @ np.asarray(hk.dual_coef_)  # it centres the kernel (fit_intercept)
        fits.append(("himalaya KernelRidgeCV (linear)", sec, coef, np.asarray(hk.best_alphas_), "same folds + score"))
        print(f"  himalaya KernelRidgeCV: {sec:.1f} s", flush=True)
    if sklearn and n * t * len(ALPHAS) * 8 < 4e9:  # its LOO values are n × targets × alphas
        from sklearn.linear_model import RidgeCV as SkRidgeCV

        sec, sk = timed(lambda: SkRidgeCV(ALPHAS, alpha_per_target=True).fit(X, Y))
        fits.append(("sklearn RidgeCV (alpha_per_target)", sec, sk.coef_.T, np.asarray(sk.alpha_), "leave-one-out (GCV), not 5-fold"))
        print(f"  sklearn RidgeCV: {sec:.1f} s", flush=True)

    sub = np.linspace(0, t - 1, min(t, 100)).astype(int)  # float64 reference refits on a subset of targets
    X64, Y64 = X.astype(np.float64), Y[:, sub].astype(np.float64)
    rows = []
    base = fits[0][1]
    for method, sec, coef, alphas, note in fits:
        alphas = np.asarray(alphas, dtype=np.float64)
        same = np.isclose(alphas, berg.best_alphas_, rtol=1e-3)
        idx = np.clip(np.searchsorted(berg.alphas_, alphas * (1 - 1e-6)), 0, len(berg.alphas_) - 1)
        tied = berg.cv_scores_[idx, np.arange(t)] >= berg.cv_score_ - 1e-5
        err = float(np.abs(sklearn_refit(X64, Y64, alphas[sub]) - coef[:, sub]).max()) if sklearn else float("nan")
        rows.append(dict(method=method, seconds=sec, ratio=sec / base, coef_diff=float(np.abs(coef - berg.coef_).max()), ref_err=err,
                         same=float(same.mean()), tie=float((same | tied).mean()), note=note))
    rows[0]["scale"] = float(np.abs(berg.coef_).max())
    return rows


def run_banded(name: str, n: int, widths: tuple[int, ...], t: int, *, n_iter: int, folds: int, target_batch: int) -> None:
    """berg's native banded ridge against himalaya's on the same draws; prints seconds, ratio and differences."""
    from berg_core.fit.ridge import BandedRidgeCV

    rng = np.random.default_rng(1)
    X, Y = make_problem(n, sum(widths), t)
    edges = np.concatenate([[0], np.cumsum(widths)])
    Xs = [X[:, a:b] for a, b in zip(edges[:-1], edges[1:])]
    Y = (Y + X[:, : widths[0]] @ rng.standard_normal((widths[0], t)).astype(np.float32) * 0.05).astype(np.float32)
    # r2 scoring: the correlation is flat in alpha where the weights only shrink, so by correlation the two
    # engines may keep different (CV-tied) alphas in float32 and the weights would not be comparable
    kw = dict(alphas=ALPHAS, n_iter=n_iter, cv=folds, scoring="r2", random_state=0, target_batch=target_batch)
    BandedRidgeCV(**kw).fit([x[:200] for x in Xs], Y[:200, :10])  # warm-up
    print(f"\n({name}) banded ridge: n={n}, spaces={'+'.join(map(str, widths))}, targets={t}, {n_iter} draws, {len(ALPHAS)} alphas, "
          f"{folds} folds, alpha by CV r2, float32 input", flush=True)
    fits = {}
    for engine in ("berg", "himalaya"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sec, fit = timed(lambda engine=engine: BandedRidgeCV(**kw, engine=engine).fit(Xs, Y))
        fits[engine] = (sec, fit)
        print(f"  {engine}: {sec:.1f} s ({fit.solver_})", flush=True)
    (sb, b), (sh, h) = fits["berg"], fits["himalaya"]
    print("| engine | seconds | × berg time | max abs coef diff / max abs coef | max abs deltas diff | max abs CV score diff |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| berg (native) | {sb:.2f} | 1.00 | | | |")
    print(f"| himalaya | {sh:.2f} | {sh / sb:.2f} | {np.abs(b.coef_ - h.coef_).max() / np.abs(h.coef_).max():.2e} | "
          f"{np.abs(b.deltas_ - h.deltas_).max():.2e} | {np.abs(b.cv_scores_ - h.cv_scores_).max():.2e} |")
    print(f"  himalaya / berg time ratio: {sh / sb:.2f}x")


def print_table(name: str, rows: list[dict]) -> None:
    print(f"\n({name}) max |berg coef| = {rows[0]['scale']:.3g}")
    print("| method | seconds | × berg time | max abs coef diff vs berg | max abs error vs float64 sklearn Ridge at own alphas | "
          "same alpha as berg | same or CV tie | note |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['method']} | {r['seconds']:.2f} | {r['ratio']:.2f} | {r['coef_diff']:.2e} | {r['ref_err']:.2e} | "
              f"{100 * r['same']:.1f} % | {100 * r['tie']:.1f} % | {r['note']} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    ap.add_argument("--only", choices=["a", "b", "c", "d"], default=None)
    ap.add_argument("--skip-sklearn", action="store_true")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="limit BLAS threads (all methods), e.g. 1 on a busy machine")
    args = ap.parse_args()
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
        try:
            import torch

            torch.set_num_threads(args.threads)
        except ImportError:
            pass
    problems = {"a": (8000, 512, 2000), "b": (3000, 8192, 5000)}
    banded = {"c": (2000, (128, 64, 32), 500, 10), "d": (600, (512, 256), 300, 5)}
    if args.quick:
        problems = {"a": (1600, 128, 400), "b": (600, 1024, 500)}
        banded = {"c": (1000, (64, 32, 16), 200, 8), "d": (300, (256, 128), 100, 4)}
    import himalaya
    import sklearn

    print(f"numpy {np.__version__}, himalaya {himalaya.__version__}, sklearn {sklearn.__version__}")
    for name, (n, p, t) in problems.items():
        if args.only and name != args.only:
            continue
        # himalaya's primal RidgeCV on (b) builds (alphas_batch, p, n_train) matrices; it is its own
        # documented slow path for p > n, so (b) compares against its KernelRidgeCV instead.
        rows = run_problem(name, n, p, t, folds=args.folds, sklearn=not args.skip_sklearn, himalaya_primal=(name == "a"),
                           target_batch=2048)
        print_table(name, rows)
    for name, (n, widths, t, n_iter) in banded.items():
        if args.only in (None, name):
            run_banded(name, n, widths, t, n_iter=n_iter, folds=args.folds, target_batch=2048)


if __name__ == "__main__":
    main()
