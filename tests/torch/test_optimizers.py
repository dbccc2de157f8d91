"""Compare tensortape's optimizers with PyTorch's on identical gradients.

Usage: test_optimizers.py PROGRAM [--seed S]

PROGRAM is the optimizer_steps executable of the build under test.
CONFIGURATIONS covers SGD with and without momentum, dampening, Nesterov
and weight decay, and Adam and AdamW with several betas, epsilons and
weight decays. For each, the script draws a few parameters of random shapes
and a sequence of STEPS random gradients, in float32 or float64 to match
the build's tt_real. The learning rate changes twice during the sequence, as a
schedule would change it. PROGRAM and torch.optim (SGD, Adam, AdamW, with
foreach=False) take the same steps from the same values, and the script
compares every parameter after every step with the rule in
`allowed_error`.

It prints each disagreeing configuration, the worst entry overall and the
closing line "torch optimizers: N passed, N failed", counting
configurations. It exits 0 when all agree and 1 otherwise; without torch it
exits 77 (skipped), or 1 under CI=true (see torch_import.py).
"""
import argparse
import random
import subprocess
import sys

from torch_import import import_torch

torch = import_torch("torch optimizers")

DEFAULT_SEED = 1

# Steps per configuration, and the steps at which the learning rate is
# multiplied by LEARNING_RATE_FACTOR.
STEPS = 8
LEARNING_RATE_CHANGES = (3, 6)
LEARNING_RATE_FACTOR = 0.5

# Parameters per configuration and their largest side.
PARAMETERS = 3
MAX_SIDE = 6

# (name, kind, learning rate, hyperparameters of the PyTorch constructor)
CONFIGURATIONS = [
    ("sgd", "sgd", 0.1, {}),
    ("sgd weight decay", "sgd", 0.1, {"weight_decay": 0.05}),
    ("sgd momentum", "sgd", 0.05, {"momentum": 0.9}),
    ("sgd momentum dampening", "sgd", 0.05, {"momentum": 0.8, "dampening": 0.3}),
    ("sgd nesterov", "sgd", 0.05, {"momentum": 0.9, "nesterov": True}),
    ("sgd nesterov weight decay", "sgd", 0.05,
     {"momentum": 0.5, "nesterov": True, "weight_decay": 0.01}),
    ("adam", "adam", 0.01, {}),
    ("adam betas eps", "adam", 0.05, {"betas": (0.5, 0.9), "eps": 1e-3}),
    ("adam weight decay", "adam", 0.01, {"weight_decay": 0.1}),
    ("adamw", "adamw", 0.01, {}),
    ("adamw strong decay", "adamw", 0.05, {"weight_decay": 0.5, "betas": (0.8, 0.99)}),
]

# Unit roundoff u of each element type.
UNIT_ROUNDOFF = {"float": 2.0**-24, "double": 2.0**-53}

# Units of roundoff allowed per step and per unit of scale (see
# allowed_error). Each step rounds each element in a handful of operations
# (at most 8 in Adam), in each program; 16 covers both programs' rounding.
ROUNDING_PER_STEP = 16.0


def allowed_error(want, scale, step, unit_roundoff):
    """Return the largest |got − want| allowed after `step` steps.

        allowed = ROUNDING_PER_STEP · step · u · (|want| + scale)

    `scale` is the largest |parameter| of the configuration before the
    first step plus the sum of the learning rates so far times the largest
    step direction (1 for Adam, whose update is at most about lr per step,
    and the largest |momentum buffer| bound for SGD, see run_torch). Each
    step's rounding errors are a few units of u times the parameter and the
    update; they add up over the steps without growing, because the
    gradients are fed in and do not depend on the parameters.
    """
    return ROUNDING_PER_STEP * step * unit_roundoff * (want.abs() + scale)


def torch_optimizer(kind, parameters, learning_rate, hyperparameters):
    if kind == "sgd":
        return torch.optim.SGD(parameters, lr=learning_rate, foreach=False, **hyperparameters)
    if kind == "adam":
        return torch.optim.Adam(parameters, lr=learning_rate, foreach=False, **hyperparameters)
    return torch.optim.AdamW(parameters, lr=learning_rate, foreach=False, **hyperparameters)


class Problem:
    """One configuration with its initial parameters and gradient sequence."""

    def __init__(self, name, kind, learning_rate, hyperparameters, rng, generator, dtype):
        self.name = name
        self.kind = kind
        self.hyperparameters = hyperparameters
        self.shapes = [(rng.randint(1, MAX_SIDE), rng.randint(1, MAX_SIDE))
                       for _ in range(PARAMETERS)]
        self.initial = [torch.rand(shape, generator=generator, dtype=torch.float64)
                        .mul(2).sub(1).to(dtype) for shape in self.shapes]
        self.gradients = [[torch.randn(shape, generator=generator, dtype=torch.float64).to(dtype)
                           for shape in self.shapes] for _ in range(STEPS)]
        self.learning_rates = []
        rate = learning_rate
        for step in range(1, STEPS + 1):
            if step in LEARNING_RATE_CHANGES:
                rate *= LEARNING_RATE_FACTOR
            self.learning_rates.append(rate)

    def options_line(self):
        h = self.hyperparameters
        betas = h.get("betas", (0.9, 0.999)) if self.kind != "sgd" else (0.0, 0.0)
        eps = h.get("eps", 1e-8) if self.kind != "sgd" else 0.0
        default_decay = 0.01 if self.kind == "adamw" else 0.0
        values = [h.get("momentum", 0.0), h.get("dampening", 0.0),
                  1 if h.get("nesterov", False) else 0, betas[0], betas[1], eps,
                  h.get("weight_decay", default_decay)]
        return "options " + " ".join(repr(float(value)) if not isinstance(value, int)
                                     else str(value) for value in values)


def format_values(tensor):
    """Return the values as shortest round-trip decimals, exact for float32."""
    return " ".join(map(repr, tensor.reshape(-1).double().tolist()))


def format_problems(problems):
    lines = []
    for problem in problems:
        lines.append(f"problem {problem.kind} {PARAMETERS} {STEPS}")
        lines.append(problem.options_line())
        for rows, cols in problem.shapes:
            lines.append(f"shape {rows} {cols}")
        for values in problem.initial:
            lines.append("p " + format_values(values))
        for rate, gradients in zip(problem.learning_rates, problem.gradients):
            lines.append(f"step {rate!r}")
            for gradient in gradients:
                lines.append("g " + format_values(gradient))
    return "\n".join(lines) + "\n"


def run_torch(problem):
    """Return the parameters after each step (flat float64) and the scales."""
    parameters = [values.clone().requires_grad_() for values in problem.initial]
    optimizer = torch_optimizer(problem.kind, parameters, problem.learning_rates[0],
                                problem.hyperparameters)
    momentum = problem.hyperparameters.get("momentum", 0.0)
    # Largest step direction: Adam moves each element by about lr at most;
    # SGD by lr·|d| with |d| at most (1 + momentum)·max|g|/(1 − momentum)
    # plus the weight decay term, bounded generously by the same factor.
    largest_gradient = max(float(g.abs().max()) for gradients in problem.gradients
                           for g in gradients)
    if problem.kind == "sgd":
        direction = (1.0 + momentum) * (largest_gradient + 1.0) / (1.0 - momentum)
    else:
        direction = 1.0
    base = max(float(values.abs().max()) for values in problem.initial)
    results = []
    scales = []
    travelled = 0.0
    for rate, gradients in zip(problem.learning_rates, problem.gradients):
        for group in optimizer.param_groups:
            group["lr"] = rate
        for parameter, gradient in zip(parameters, gradients):
            parameter.grad = gradient.clone()
        optimizer.step()
        travelled += rate * direction
        results.append(torch.cat([p.detach().double().reshape(-1) for p in parameters]))
        scales.append(base + travelled)
    return results, scales


def parse_output(output, problems):
    """Return, per problem, the list of parameter vectors after each step."""
    steps = [line.split() for line in output.splitlines() if line.strip()]
    if len(steps) != STEPS * len(problems):
        raise ValueError(f"optimizer_steps printed {len(steps)} steps, expected "
                         f"{STEPS * len(problems)}")
    results = []
    for index in range(len(problems)):
        block = steps[index * STEPS:(index + 1) * STEPS]
        results.append([torch.tensor([float(v) for v in tokens[2:]], dtype=torch.float64)
                        for tokens in block])
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("program", help="path of the optimizer_steps executable")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"seed of the parameters and gradients (default {DEFAULT_SEED})")
    args = parser.parse_args()

    query = subprocess.run([args.program, "--real"], capture_output=True, text=True)
    real = query.stdout.strip()
    if query.returncode != 0 or real not in UNIT_ROUNDOFF:
        print(f"torch optimizers: {args.program} --real printed {real!r}, expected "
              "'float' or 'double'")
        return 1
    dtype = torch.float64 if real == "double" else torch.float32
    unit_roundoff = UNIT_ROUNDOFF[real]

    rng = random.Random(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    problems = [Problem(name, kind, rate, hyperparameters, rng, generator, dtype)
                for name, kind, rate, hyperparameters in CONFIGURATIONS]

    run = subprocess.run([args.program], input=format_problems(problems), capture_output=True,
                         text=True)
    if run.returncode != 0:
        print(f"torch optimizers: {args.program} exited with status {run.returncode}:")
        print(run.stderr, end="")
        return 1
    outputs = parse_output(run.stdout, problems)

    passed = 0
    failed = 0
    worst = (0.0, "")
    for problem, got_steps in zip(problems, outputs):
        want_steps, scales = run_torch(problem)
        problem_ok = True
        for step, (got, want, scale) in enumerate(zip(got_steps, want_steps, scales), start=1):
            allowed = allowed_error(want, scale, step, unit_roundoff)
            ratio = (got - want).abs() / allowed
            if bool(torch.isnan(got).any()):
                ratio = torch.full_like(ratio, float("inf"))
            entry = int(torch.argmax(ratio))
            value = float(ratio[entry])
            description = (f"{problem.name}, step {step}, element {entry}: got "
                           f"{float(got[entry])!r}, want {float(want[entry])!r}, allowed "
                           f"{float(allowed[entry]):.3g} ({value:.3f} of it)")
            if value > worst[0] or not worst[1]:
                worst = (value, description)
            if value > 1.0:
                if problem_ok:
                    print(f"FAIL {description}")
                problem_ok = False
        if problem_ok:
            passed += 1
        else:
            failed += 1

    print(f"torch {torch.__version__}, tt_real {real}, seed {args.seed}: "
          f"{len(problems)} configurations of {STEPS} steps")
    print(f"worst entry: {worst[1]}")
    print(f"torch optimizers: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
