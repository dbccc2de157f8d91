"""Compare tensortape's loss and gradients of random MLPs with PyTorch's.

Usage: test_agreement.py PROGRAM [--problems N] [--seed S]

PROGRAM is the mlp_gradients executable of the build under test. The script
draws random MLPs from a fixed seed: 1 to 4 layers, widths 1 to 64, 1 to 32
samples, and a largest logit magnitude between 0.1 and 1000. PROGRAM
computes the mean softmax cross-entropy and the gradients of the input, of
every weight and of every bias. PyTorch computes the same on identical
numbers, in float32 or float64 to match the build's tt_real, and the script
compares the two entry by entry with the rule in `allowed_error`.

It prints each problem that disagrees, the worst entry overall, and the
closing line "torch agreement: N passed, N failed", counting problems. It
exits 0 when every problem agrees and 1 otherwise. Without an interpreter
that can import torch it exits 77, which meson counts as skipped. When the
environment variable CI is "true", a missing torch is an error (exit 1)
instead, because CI installs torch.

The MLP is the one of the README's "The math": z(t) = W(t)·h(t-1) + b(t)
(eq. 1, 3), h(t) = ReLU(z(t)) for t < T (eq. 2, 15) and the mean
cross-entropy of z(T) (eq. 5-8). tensortape keeps samples as columns: x is
d_0 × n and z(t) is d_t × n. PyTorch's Linear layout keeps them as rows,
so the PyTorch side works on xᵀ (n × d_0) and transposes its input
gradient back; W(t) is d_t × d_(t-1) in both, and b(t) is d_t × 1 in
tensortape and a vector of d_t in PyTorch.
"""
import argparse
import math
import random
import subprocess
import sys

from torch_import import import_torch

torch = import_torch("torch agreement")

# Problems per run and the seed they are drawn from. A run of 400 problems
# took about 9 s, 3 s of it importing torch, on a 2-core x86-64 machine.
DEFAULT_PROBLEMS = 400
DEFAULT_SEED = 1

# Ranges of the random MLPs, all inclusive.
MAX_LAYERS = 4
MAX_WIDTH = 64
MAX_SAMPLES = 32

# The largest |logit| of a problem is set to 10^e, e uniform in this range,
# by scaling the last layer's weights and bias.
LOGIT_EXPONENT_RANGE = (-1.0, 3.0)

# Chance that a hidden unit gets an all-zero weight row and a zero bias, so
# that its pre-activation is exactly 0 for every sample in every program.
# ReLU'(0) is then 0 in tensortape (eq. 16) and in PyTorch, and any other
# convention changes that unit's weight gradient from 0.
DEAD_UNIT_PROBABILITY = 0.1

# Relative tolerance of the comparison for each tt_real.
RTOL = {"float": 1e-5, "double": 1e-10}

# Unit roundoff u of each element type: half the distance from 1 to the
# next representable number.
UNIT_ROUNDOFF = {"float": 2.0**-24, "double": 2.0**-53}

# Multiple of u·Z and of u·A allowed on top of RTOL (see allowed_error): 2
# because both programs round, times 2 for the softmax bound derived there.
# With it, runs of 3000 problems for each of the seeds 2, 3 and 4 used at
# most 30% of an entry's allowance in float and 5% in double.
ROUNDING_FACTOR = 4.0

# Failing problems printed in full; the rest are only counted.
MAX_REPORTED_FAILURES = 10


class Problem:
    """One MLP with its input and labels, in tensortape's layout.

    x is d_0 × n, weights[t-1] is W(t), d_t × d_(t-1), and biases[t-1] is
    b(t), d_t × 1, all of the build's element type. labels contains n class
    indices in [0, d_T).
    """

    def __init__(self, index, widths, n, x, weights, biases, labels):
        self.index = index
        self.widths = widths
        self.n = n
        self.x = x
        self.weights = weights
        self.biases = biases
        self.labels = labels

    @property
    def layers(self):
        return len(self.weights)

    def tensor_names(self):
        """Return the names of the compared results, in the program's order."""
        names = ["loss", "dx"]
        for t in range(1, self.layers + 1):
            names += [f"dw{t}", f"db{t}"]
        return names

    def describe(self):
        widths = "-".join(str(width) for width in self.widths)
        return f"problem {self.index}: widths {widths}, {self.n} samples"


def forward_float64(problem):
    """Return z(1) .. z(T) in float64, computed from the problem's values."""
    h = problem.x.double()
    pre_activations = []
    for t, (weight, bias) in enumerate(zip(problem.weights, problem.biases), start=1):
        z = weight.double() @ h + bias.double()
        pre_activations.append(z)
        if t < problem.layers:
            h = torch.relu(z)
    return pre_activations


def has_ambiguous_kink(problem, unit_roundoff):
    """Return whether a hidden pre-activation is too close to 0 to trust.

    Rounding moves a computed z(t) away from the exact one by at most
    e(t) = γ·(|W(t)|·|h(t-1)| + |b(t)|) + |W(t)|·e(t-1), with e(0) = 0 and
    γ = (d_(t-1) + 1)·u, the standard bound for a sum of d_(t-1) + 1 terms
    in any order; ReLU passes errors on without growing them. Each program
    and the float64 reference here stay within e(t) of the exact value, so
    where |z| > 3·e(t) every program gets the sign of the exact z and takes
    the same side of ReLU's kink. Elsewhere the programs may legitimately
    disagree about ReLU'(z), and the problem is drawn again. An exact 0
    with e(t) = 0 comes from a dead unit and is exact in every program.
    """
    h = problem.x.double()
    error = torch.zeros_like(h)
    for t in range(1, problem.layers):
        weight = problem.weights[t - 1].double()
        bias = problem.biases[t - 1].double()
        gamma = (problem.widths[t - 1] + 1) * unit_roundoff
        z = weight @ h + bias
        error = gamma * (weight.abs() @ h.abs() + bias.abs()) + weight.abs() @ error
        ambiguous = (z.abs() <= 3 * error) & (error > 0)
        if bool(ambiguous.any()):
            return True
        h = torch.relu(z)
    return False


def draw_problem(index, rng, generator, dtype, unit_roundoff):
    """Draw one problem; redraw while it has an ambiguous kink.

    Returns the problem and the number of draws it took.
    """
    for draws in range(1, 1000):
        layers = rng.randint(1, MAX_LAYERS)
        widths = [rng.randint(1, MAX_WIDTH) for _ in range(layers + 1)]
        n = rng.randint(1, MAX_SAMPLES)
        labels = [rng.randrange(widths[-1]) for _ in range(n)]

        # He-scaled normal weights keep the hidden activations of order 1.
        x = torch.randn(widths[0], n, generator=generator, dtype=torch.float64)
        weights = []
        biases = []
        for t in range(1, layers + 1):
            scale = math.sqrt(2.0 / widths[t - 1])
            weight = torch.randn(widths[t], widths[t - 1], generator=generator,
                                 dtype=torch.float64) * scale
            bias = torch.rand(widths[t], 1, generator=generator, dtype=torch.float64) * 0.2 - 0.1
            if t < layers:
                for unit in range(widths[t]):
                    if rng.random() < DEAD_UNIT_PROBABILITY:
                        weight[unit] = 0.0
                        bias[unit] = 0.0
            weights.append(weight.to(dtype))
            biases.append(bias.to(dtype))
        problem = Problem(index, widths, n, x.to(dtype), weights, biases, labels)

        # Scale the last layer so that the largest |logit| is 10^e.
        largest_logit = forward_float64(problem)[-1].abs().max().item()
        if largest_logit > 0:
            factor = 10.0 ** rng.uniform(*LOGIT_EXPONENT_RANGE) / largest_logit
            problem.weights[-1] = (problem.weights[-1].double() * factor).to(dtype)
            problem.biases[-1] = (problem.biases[-1].double() * factor).to(dtype)

        if not has_ambiguous_kink(problem, unit_roundoff):
            return problem, draws
    raise RuntimeError(f"problem {index}: every draw had an ambiguous kink")


def format_values(tensor):
    """Return the tensor's values, row-major, as shortest round-trip decimals.

    Each float64 value is exact, and so is each float32 value, since every
    float32 converts to a float64 exactly.
    """
    return " ".join(map(repr, tensor.reshape(-1).tolist()))


def format_problems(problems):
    """Return the problems in mlp_gradients' input format."""
    lines = []
    for problem in problems:
        lines.append(f"mlp {problem.layers} {problem.n}")
        lines.append("widths " + " ".join(map(str, problem.widths)))
        lines.append("labels " + " ".join(map(str, problem.labels)))
        lines.append("x " + format_values(problem.x))
        for t, (weight, bias) in enumerate(zip(problem.weights, problem.biases), start=1):
            lines.append(f"w {t} " + format_values(weight))
            lines.append(f"b {t} " + format_values(bias))
    return "\n".join(lines) + "\n"


def parse_results(output, problems):
    """Parse mlp_gradients' output into one dict per problem.

    Each dict maps a name of Problem.tensor_names() to a float64 tensor of
    the values, in tensortape's layout and row-major order.
    """
    results = []
    for line in output.splitlines():
        tokens = line.split()
        if not tokens:
            continue
        if tokens[0] == "mlp":
            results.append({})
            continue
        if not results:
            raise ValueError(f"mlp_gradients output starts with {tokens[0]!r}, not 'mlp'")
        if tokens[0] in ("dw", "db"):
            name = tokens[0] + tokens[1]
            values = tokens[2:]
        else:
            name = tokens[0]
            values = tokens[1:]
        results[-1][name] = torch.tensor([float(value) for value in values], dtype=torch.float64)
    if len(results) != len(problems):
        raise ValueError(f"mlp_gradients returned {len(results)} results for "
                         f"{len(problems)} problems")
    for problem, result in zip(problems, results):
        if sorted(result) != sorted(problem.tensor_names()):
            raise ValueError(f"{problem.describe()}: mlp_gradients returned "
                             f"{sorted(result)}, expected {sorted(problem.tensor_names())}")
    return results


def torch_results(problem, dtype):
    """Compute the loss and gradients with PyTorch in `dtype`.

    Returns a dict like parse_results', in tensortape's layout.
    """
    # Samples are rows in PyTorch: the leaf is xᵀ, n × d_0.
    x_rows = problem.x.to(dtype).T.clone().requires_grad_()
    weights = [weight.to(dtype).clone().requires_grad_() for weight in problem.weights]
    biases = [bias.to(dtype).reshape(-1).clone().requires_grad_() for bias in problem.biases]

    h = x_rows
    for t, (weight, bias) in enumerate(zip(weights, biases), start=1):
        h = torch.nn.functional.linear(h, weight, bias)
        if t < problem.layers:
            h = torch.relu(h)
    loss = torch.nn.functional.cross_entropy(h, torch.tensor(problem.labels))
    loss.backward()

    results = {
        "loss": loss.detach().double().reshape(1),
        "dx": x_rows.grad.T.double().reshape(-1),
    }
    for t, (weight, bias) in enumerate(zip(weights, biases), start=1):
        results[f"dw{t}"] = weight.grad.double().reshape(-1)
        results[f"db{t}"] = bias.grad.double().reshape(-1)
    return results


def absolute_results(problem):
    """Return the largest |logit| Z and the absolute value of each result.

    The absolute values repeat the computation in float64 with every
    operand replaced by its absolute value. Forward, h(0) = |x| and
    |z|(t) = |W(t)|·|h|(t-1) + |b(t)|, with |h|(t) equal to |z|(t) where
    z(t) > 0 and 0 elsewhere. Backward, (softmax + y)/n replaces
    ∂L/∂z(T) = (softmax − y)/n (eq. 11 over n), and |W(t)| and |h|(t-1)
    replace W(t) and h(t-1). Entry by entry, this is the sum of the magnitudes of
    every term that the result adds up, through every layer: the usual scale
    of the result's rounding error (a first-order bound is a small multiple
    of u times it). For the loss it is the mean over samples of
    |z|(T) at the column's maximum and at the label, the operands of the
    subtraction max_c z − z_label, plus 1 for the log of the sum in [1, C]
    (eq. 10), whose error is absolute.
    """
    pre_activations = forward_float64(problem)
    logits = pre_activations[-1]
    n = problem.n
    labels = torch.tensor(problem.labels)
    samples = torch.arange(n)

    # Forward: |h|(t-1) for t = 1 .. T, then |z|(T).
    h_abs = [problem.x.double().abs()]
    for t in range(1, problem.layers):
        z_abs = problem.weights[t - 1].double().abs() @ h_abs[-1] + problem.biases[t - 1].double().abs()
        h_abs.append(z_abs * (pre_activations[t - 1] > 0))
    logits_abs = (problem.weights[-1].double().abs() @ h_abs[-1]
                  + problem.biases[-1].double().abs())

    # Backward, from (softmax + y)/n.
    one_hot = torch.zeros_like(logits)
    one_hot[labels, samples] = 1.0
    upstream = (torch.softmax(logits, dim=0) + one_hot) / n
    scales = {}
    for t in range(problem.layers, 0, -1):
        scales[f"dw{t}"] = (upstream @ h_abs[t - 1].T).reshape(-1)
        scales[f"db{t}"] = upstream.sum(dim=1)
        upstream = problem.weights[t - 1].double().abs().T @ upstream
        if t > 1:
            # ReLU'(z(t-1)) of eq. 12 and 16: 0 where z ≤ 0.
            upstream = upstream * (pre_activations[t - 2] > 0)
    scales["dx"] = upstream.reshape(-1)

    largest = logits.argmax(dim=0)
    scales["loss"] = (logits_abs[largest, samples] + logits_abs[labels, samples]
                      + 1.0).mean().reshape(1)
    return logits.abs().max().item(), scales


def allowed_error(want, absolute, largest_logit, rtol, unit_roundoff):
    """Return the largest |got − want| allowed for each entry of a tensor.

        allowed = (rtol + 4·u·Z)·(|want| + max|want|) + 4·u·max(A)

    The maxima are over the tensor. Z is the largest |logit| of the problem,
    u the unit roundoff, and A the tensor's absolute value from
    absolute_results.

    rtol·|want| is the relative requirement. rtol·max|want| admits entries
    that are sums of terms of mixed sign cancelling to far below the
    tensor's largest entry, because their rounding error follows the terms,
    not the small result.

    4·u·Z covers the rounding of the logits, which is about u·Z in each
    program and different in each. Moving the logits of a sample by δ
    changes softmax_c by softmax_c·(δ_c − Σ_k softmax_k·δ_k). That is at
    most 2·max|δ| times |softmax_c − y_c|, so ∂L/∂z(T) and every gradient,
    which is linear in it, move by up to 2·2·u·Z relative. In float at
    Z = 1000 the term is 2.4e-4, above rtol. A 24-bit significand cannot fix
    these gradients to 1e-5: rounding the exact logits to float, and nothing
    else, moves the gradients by up to 2·u·Z = 1.2e-4 relative. In double
    the term is below 5e-13.

    4·u·max(A) covers a whole tensor that cancels. An example is a bias
    gradient whose samples contribute exactly ±1/n when the softmax
    saturates. Its result is 0 or a rounding residue near u/n, depending on
    the order of the sum, in either program. The term also covers hidden
    activations that are small differences of large terms, whose rounding
    error enters the weight gradients.
    """
    scale = want.abs().max()
    return ((rtol + ROUNDING_FACTOR * unit_roundoff * largest_logit) * (want.abs() + scale)
            + ROUNDING_FACTOR * unit_roundoff * absolute.max())


class Mismatch:
    """The worst entry of one compared tensor, relative to its allowance."""

    def __init__(self, problem, name, shape, entry, got, want, allowed):
        self.problem = problem
        self.name = name
        self.shape = shape
        self.entry = entry
        self.got = got
        self.want = want
        self.allowed = allowed

    @property
    def ratio(self):
        """Return |got − want| / allowed: above 1 fails; NaN counts as failing."""
        difference = abs(self.got - self.want)
        if math.isnan(difference):
            return math.inf
        if difference == 0:
            return 0.0
        return difference / self.allowed if self.allowed > 0 else math.inf

    def describe(self):
        row, col = divmod(self.entry, self.shape[1])
        return (f"{self.name}[{row}][{col}] of {self.shape[0]}x{self.shape[1]}: "
                f"tensortape {self.got:.17g}, PyTorch {self.want:.17g}, "
                f"|difference| {abs(self.got - self.want):.3g}, allowed {self.allowed:.3g} "
                f"(ratio {self.ratio:.3g})")


def tensor_shape(problem, name):
    """Return (rows, cols) of a result in tensortape's layout."""
    if name == "loss":
        return (1, 1)
    if name == "dx":
        return (problem.widths[0], problem.n)
    t = int(name[2:])
    if name.startswith("dw"):
        return (problem.widths[t], problem.widths[t - 1])
    return (problem.widths[t], 1)


def compare_problem(problem, got, want, real):
    """Return the worst Mismatch of each compared tensor of one problem."""
    largest_logit, absolute = absolute_results(problem)
    worst = []
    for name in problem.tensor_names():
        allowed = allowed_error(want[name], absolute[name], largest_logit, RTOL[real],
                                UNIT_ROUNDOFF[real])
        difference = (got[name] - want[name]).abs()
        # Equal entries rank lowest even where nothing is allowed (0/0), and
        # a NaN ranks highest.
        ratio = torch.where(difference == 0, torch.zeros_like(difference), difference / allowed)
        ratio = torch.where(torch.isnan(difference), torch.full_like(difference, math.inf), ratio)
        entry = int(torch.argmax(ratio))
        worst.append(Mismatch(problem, name, tensor_shape(problem, name), entry,
                              got[name][entry].item(), want[name][entry].item(),
                              allowed[entry].item()))
    return worst


def check_relu_convention():
    """Return whether PyTorch's ReLU has derivative 0 at 0, as in eq. 16."""
    point = torch.zeros(1, requires_grad=True)
    torch.relu(point).sum().backward()
    return point.grad.item() == 0.0


def query_real(program):
    """Return the build's tt_real, "float" or "double", or None after a message."""
    query = subprocess.run([program, "--real"], capture_output=True, text=True)
    real = query.stdout.strip()
    if query.returncode != 0 or real not in RTOL:
        print(f"torch agreement: {program} --real exited with status {query.returncode} "
              f"and printed {real!r}, expected 'float' or 'double'")
        print(query.stderr, end="")
        return None
    return real


def draw_problems(count, seed, dtype, unit_roundoff):
    """Return `count` problems drawn from `seed` and the number of redraws."""
    rng = random.Random(seed)
    generator = torch.Generator().manual_seed(seed)
    problems = []
    redraws = 0
    for index in range(count):
        problem, draws = draw_problem(index, rng, generator, dtype, unit_roundoff)
        problems.append(problem)
        redraws += draws - 1
    return problems, redraws


def run_program(program, problems):
    """Return the program's results for the problems, or None after a message."""
    run = subprocess.run([program], input=format_problems(problems), capture_output=True,
                         text=True)
    if run.returncode != 0:
        print(f"torch agreement: {program} exited with status {run.returncode}:")
        print(run.stderr, end="")
        return None
    return parse_results(run.stdout, problems)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("program", help="path of the mlp_gradients executable")
    parser.add_argument("--problems", type=int, default=DEFAULT_PROBLEMS,
                        help=f"number of random MLPs, at least 1 (default {DEFAULT_PROBLEMS})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"seed of the random MLPs (default {DEFAULT_SEED})")
    args = parser.parse_args()
    if args.problems < 1:
        parser.error(f"--problems must be at least 1, not {args.problems}")

    # One thread: results repeat exactly, and the tests running beside this
    # one keep their cores.
    torch.set_num_threads(1)
    if not check_relu_convention():
        print("torch agreement: PyTorch's ReLU gradient at 0 is not 0, so its gradients "
              "cannot be compared with eq. 16")
        return 1

    real = query_real(args.program)
    if real is None:
        return 1
    dtype = torch.float32 if real == "float" else torch.float64
    problems, redraws = draw_problems(args.problems, args.seed, dtype, UNIT_ROUNDOFF[real])
    results = run_program(args.program, problems)
    if results is None:
        return 1

    passed = 0
    failed = 0
    overall_worst = None
    for problem, got in zip(problems, results):
        worst = compare_problem(problem, got, torch_results(problem, dtype), real)
        failures = [mismatch for mismatch in worst if mismatch.ratio > 1]
        if failures:
            failed += 1
            if failed <= MAX_REPORTED_FAILURES:
                print(f"FAIL {problem.describe()}")
                for mismatch in failures:
                    print(f"    {mismatch.describe()}")
        else:
            passed += 1
        for mismatch in worst:
            if overall_worst is None or mismatch.ratio > overall_worst.ratio:
                overall_worst = mismatch
    if failed > MAX_REPORTED_FAILURES:
        print(f"... and {failed - MAX_REPORTED_FAILURES} more failing problems")

    dead_units = sum(int((weight == 0).all(dim=1).sum()) for problem in problems
                     for weight in problem.weights[:-1])
    print(f"torch {torch.__version__}, tt_real {real}, seed {args.seed}: {len(problems)} MLPs, "
          f"{dead_units} dead hidden units, {redraws} redrawn for a pre-activation "
          "too close to ReLU's kink")
    print(f"worst entry: {overall_worst.problem.describe()}, {overall_worst.describe()}")
    print(f"torch agreement: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
