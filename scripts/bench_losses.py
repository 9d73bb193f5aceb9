"""Forward+backward timings of the Balanced MSE losses, and GAI against a straightforward GAI.

Usage: python scripts/bench_losses.py [--device cpu|cuda|all] [--repeats N] [--quick]
       [--sizes full|quick|tiny]   (tiny: B = 16 and 64 only, a dry run of the script)

Prints, per device: BMC for B in (128, 1024, 4096) and d in (1, 216); GAI with K = 16, d = 216
for B in (128, 1024), ours (eigendecomposition of Sigma_k done once) against the straightforward
formulation that builds ``MultivariateNormal(mu_k, Sigma_k + vI)`` every step with a learnable v,
with both values checked to agree to 1e-5 relative, and the speed-up. Times are the best of
``--repeats`` runs (ms) of one forward + backward (prediction and sigma gradients), float32;
the best, not the median, because shared machines add noise that only ever slows a run down.
"""

from __future__ import annotations

import argparse
import time

import torch


def timeit(fn, device: torch.device, repeats: int, warmup: int = 2) -> float:
    """Best wall time of ``fn()`` over ``repeats`` runs, in milliseconds."""

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return min(times)


def random_gmm(k: int, d: int, gen: torch.Generator):
    a = torch.randn(k, d, d, generator=gen, dtype=torch.float64)
    cov = a @ a.transpose(1, 2) / d + 0.1 * torch.eye(d, dtype=torch.float64)
    w = torch.rand(k, generator=gen, dtype=torch.float64) + 0.5

    class Prior:  # duck-typed like ihmr.priors.GMMPrior (float64 arrays)
        weights = (w / w.sum()).numpy()
        means = torch.randn(k, d, generator=gen, dtype=torch.float64).numpy()
        covariances = cov.numpy()

    return Prior()


def gai_straightforward(pred, target, prior_t, noise_var):
    """GAI as commonly written: a new MultivariateNormal over Sigma_k + vI every call (Eq. 3.12)."""
    from torch.distributions import MultivariateNormal

    log_w, means, covs = prior_t
    d = pred.shape[1]
    eye = torch.eye(d, dtype=pred.dtype, device=pred.device)
    mse = (pred - target).pow(2).sum(1) / (2 * noise_var) + 0.5 * d * torch.log(
        2 * torch.pi * noise_var
    )
    mvn = MultivariateNormal(means, covs + noise_var * eye)
    balancing = torch.logsumexp(log_w + mvn.log_prob(pred[:, None, :]), dim=1)
    return ((mse + balancing) * (2 * noise_var).detach()).mean()


SIZES = {"full": (128, 1024, 4096), "quick": (128, 1024), "tiny": (16, 64)}


def bench_device(device: torch.device, repeats: int, sizes: str) -> None:
    from ihmr.losses import bmc_loss, gai_loss, prepare_gmm

    gen = torch.Generator().manual_seed(0)
    print(f"\n== {device} ({torch.get_num_threads()} threads, torch {torch.__version__}) ==")
    print(f"BMC forward+backward (ms, best of {repeats})")
    print(f"{'B':>6} {'d':>5} {'ms':>10}")
    for d in (1, 216):
        for b in SIZES[sizes]:
            pred = torch.randn(b, d, generator=gen).to(device).requires_grad_(True)
            target = torch.randn(b, d, generator=gen).to(device)
            sigma = torch.tensor(1.0, device=device, requires_grad=True)

            def step(pred=pred, target=target, sigma=sigma):
                loss = bmc_loss(pred, target, sigma**2)
                torch.autograd.grad(loss, (pred, sigma))

            print(f"{b:>6} {d:>5} {timeit(step, device, repeats):>10.2f}")

    k, d = 16, 216
    prior = random_gmm(k, d, gen)
    ours = prepare_gmm(prior, dtype=torch.float32, device=device)
    plain = (
        torch.as_tensor(prior.weights, dtype=torch.float32, device=device).log(),
        torch.as_tensor(prior.means, dtype=torch.float32, device=device),
        torch.as_tensor(prior.covariances, dtype=torch.float32, device=device),
    )
    print(f"GAI forward+backward, K = {k}, d = {d} (ms, best of {repeats})")
    print(f"{'B':>6} {'ours':>10} {'MVN/step':>10} {'speed-up':>9} {'rel.diff':>9}")
    for b in SIZES[sizes][:1] if sizes == "tiny" else SIZES[sizes][:2]:
        pred = (torch.randn(b, d, generator=gen) * 0.5).to(device).requires_grad_(True)
        target = pred.detach() + 0.3 * torch.randn(b, d, generator=gen).to(device)
        sigma = torch.tensor(1.0, device=device, requires_grad=True)

        def ours_step(pred=pred, target=target, sigma=sigma):
            loss = gai_loss(pred, target, ours, sigma**2)
            torch.autograd.grad(loss, (pred, sigma))
            return loss

        def plain_step(pred=pred, target=target, sigma=sigma):
            loss = gai_straightforward(pred, target, plain, sigma**2)
            torch.autograd.grad(loss, (pred, sigma))
            return loss

        a, c = float(ours_step().detach()), float(plain_step().detach())
        rel = abs(a - c) / abs(c)
        status = "ok" if rel <= 1e-5 else "MISMATCH"
        t_ours = timeit(ours_step, device, repeats)
        t_plain = timeit(plain_step, device, repeats)
        print(
            f"{b:>6} {t_ours:>10.2f} {t_plain:>10.2f} {t_plain / t_ours:>8.1f}x "
            f"{rel:>9.1e} {status}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="skip B = 4096 (--sizes quick)")
    parser.add_argument("--sizes", choices=list(SIZES), default=None)
    args = parser.parse_args()
    sizes = args.sizes or ("quick" if args.quick else "full")
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    for name in devices:
        if name == "cuda" and not torch.cuda.is_available():
            print("\n== cuda: not available, skipped ==")
            continue
        bench_device(torch.device(name), args.repeats, sizes)


if __name__ == "__main__":
    main()
