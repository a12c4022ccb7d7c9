"""The Optuna side of test/bench/sweep: the same functions, seeds and measures as main.go.

Reads its settings as JSON on stdin from main.go and writes, as JSON on stdout,
{method: {function: [per-seed result or null]}}. Runs under Debian's python3 and installs the
Debian package python3-optuna with apt if it is missing.
"""

import json
import math
import os
import subprocess
import sys


def ensure_optuna():
    try:
        import optuna  # noqa: F401
        return
    except ImportError:
        pass
    apt = ["apt-get"] if os.geteuid() == 0 else ["sudo", "apt-get"]
    print("installing python3-optuna with apt", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(apt + ["update", "-qq"], check=True, stdout=sys.stderr, env=env)
    subprocess.run(apt + ["install", "-y", "-qq", "--no-install-recommends", "python3-optuna"],
                   check=True, stdout=sys.stderr, env=env)
    os.execv(sys.executable, [sys.executable] + sys.argv)


def branin(x):
    x1, x2 = x["x1"], x["x2"]
    b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1 * x1 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


ALPHA = [1.0, 1.2, 3.0, 3.2]
A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
     [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
P = [[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
     [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]]


def hartmann6(x):
    xs = [x["x%d" % (j + 1)] for j in range(6)]
    return -sum(ALPHA[i] * math.exp(-sum(A[i][j] * (xs[j] - P[i][j] * 1e-4) ** 2 for j in range(6)))
                for i in range(4))


CURVE_OPTIMUM = 0.1
OPTIMIZERS = ["sgd", "adam", "rmsprop"]


def curve_loss(x, epoch, epochs):
    """The learning-curve surrogate of functions.go, term for term."""
    lr = math.log10(x["lr"]) + 2.5
    w = math.log2(x["width"]) - 7
    floor = (CURVE_OPTIMUM + 0.3 * lr * lr + 2 * (x["momentum"] - 0.9) ** 2 + 0.05 * w * w
             + [0.15, 0, 0.05][OPTIMIZERS.index(x["optimizer"])])
    tau = 1.5 + 3 * max(0.0, -lr) + 0.5 * max(0.0, w)
    return floor + 2 * (math.exp(-epoch / tau) - math.exp(-epochs / tau))


def main():
    ensure_optuna()
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    optuna.logging.set_verbosity(optuna.logging.ERROR)

    cfg = json.load(sys.stdin)
    seeds, budget = cfg["seeds"], cfg["tpe_budget"]
    problems = {
        "branin": (branin, {"x1": FloatDistribution(-5, 10), "x2": FloatDistribution(0, 15)}, 0.397887),
        "hartmann6": (hartmann6, {"x%d" % (j + 1): FloatDistribution(0, 1) for j in range(6)}, -3.32237),
    }
    out = {"optuna-tpe": {}, "optuna-hyperband": {}, "optuna-sha": {}}

    def evals_to_optimum(f, space, optimum, sampler):
        study = optuna.create_study(sampler=sampler)
        for n in range(1, budget + 1):
            trial = study.ask(space)
            v = f(trial.params)
            study.tell(trial, v)
            if abs(v - optimum) <= 0.01 * abs(optimum):
                return n
        return None

    for name, (f, space, optimum) in problems.items():
        out["optuna-tpe"][name] = [evals_to_optimum(f, space, optimum, optuna.samplers.TPESampler(seed=s))
                                   for s in range(seeds)]
        print("optuna: TPE on %s done" % name, file=sys.stderr)

    curve = cfg["curve"]
    epochs, cap = curve["epochs"], curve["cap"]
    space = {
        "lr": FloatDistribution(1e-4, 1, log=True),
        "momentum": FloatDistribution(0, 0.99),
        "width": IntDistribution(16, 1024, log=True),
        "optimizer": CategoricalDistribution(OPTIMIZERS),
    }

    def epochs_to_target(pruner, seed, target):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed), pruner=pruner)
        used = 0
        while used < cap:
            trial = study.ask(space)
            for e in range(1, epochs + 1):
                used += 1
                v = curve_loss(trial.params, e, epochs)
                if v <= target:
                    return used
                if e == epochs:
                    study.tell(trial, v)
                    break
                trial.report(v, e)
                if trial.should_prune():
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                    break
        return None

    for key, make in (
        ("optuna-hyperband", lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs,
                                                                     reduction_factor=3)),
        ("optuna-sha", lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)),
    ):
        out[key]["curve"] = [epochs_to_target(make(), s, t) for s, t in enumerate(curve["targets"])]
        print("optuna: %s done" % key, file=sys.stderr)

    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
