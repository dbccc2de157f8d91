"""Benchmark tensortape against OpenBLAS and PyTorch in one run.

1. bench_gemm prints single-thread GFLOP/s of tensortape's GEMM and of
   OpenBLAS's sgemm on the MLP's three products and on 1024^3.
2. Training throughput: one epoch of Fashion-MNIST (60,000 samples) with
   the MLP example and with the equivalent PyTorch model (torch_mlp.py),
   for each one-thread configuration below, alternating the two in every
   round so that both see the same machine load. The table shows the
   median samples/s over the rounds and the ratio tensortape / PyTorch.
   The two-thread configuration runs tensortape alone and reports its
   speed-up over its own one-thread run.

OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, when set, make OpenBLAS pick older
kernels, and PyTorch calls OpenBLAS through libblas. The script removes both
from the environment of every program it starts.

PyTorch is looked for in this interpreter and in /usr/bin/python3 (where
Debian's python3-torch installs it). Without it the training table shows
tensortape alone.
"""
import argparse
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# (hidden widths, batch size, threads)
CONFIGURATIONS = [
    ("256", 64, 1),
    ("256", 16, 1),
    ("512,512", 256, 1),
    ("512,512", 256, 2),
]

FORCED_OPENBLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def benchmark_environment():
    """Return the environment for the measured programs, minus the
    variables that force OpenBLAS's kernels, and print what was removed."""
    environment = dict(os.environ)
    for name in FORCED_OPENBLAS_VARIABLES:
        if name in environment:
            print(f"removed {name}={environment.pop(name)} from the environment")
    return environment


def find_torch_python(environment):
    """Return an interpreter that can import torch, or None."""
    for candidate in (sys.executable, "/usr/bin/python3"):
        if not os.path.exists(candidate):
            continue
        probe = subprocess.run(
            [candidate, "-c", "import torch, numpy"],
            env=environment, capture_output=True, text=True, check=False)
        if probe.returncode == 0:
            return candidate
    return None


def describe_torch(python, environment):
    """Return PyTorch's version and the CPU capability it reports."""
    script = (
        "import torch\n"
        "capability = [l.strip() for l in torch.__config__.show().splitlines()"
        " if 'CPU capability' in l]\n"
        "print(torch.__version__, '|', capability[0] if capability else 'capability unknown')\n")
    result = subprocess.run([python, "-c", script], env=environment, capture_output=True,
                            text=True, check=True)
    return result.stdout.strip()


def key_values(output):
    """Parse the key=value pairs of the last line of a program's output."""
    line = output.strip().splitlines()[-1]
    return dict(item.split("=", 1) for item in line.split())


def run(command, environment):
    result = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"run_benchmark: {' '.join(command)} failed:\n{result.stderr}")
    return result.stdout


def tensortape_samples_per_second(mlp, data, hidden, batch, threads, environment):
    output = run([mlp, "--data", data, "--hidden", hidden, "--batch", str(batch),
                  "--threads", str(threads), "--epochs", "1", "--lr", "0.05"], environment)
    return 60000 / float(key_values(output)["train_seconds"])


def torch_samples_per_second(python, data, hidden, batch, threads, environment):
    # torch.set_num_threads sizes PyTorch's own pool. The BLAS it calls has
    # a pool of its own, sized by these variables. Unset, that pool would
    # start one thread per CPU and compete with PyTorch's threads.
    environment = dict(environment, OMP_NUM_THREADS=str(threads),
                       OPENBLAS_NUM_THREADS=str(threads))
    output = run([python, os.path.join(HERE, "torch_mlp.py"), "--data", data, "--hidden", hidden,
                  "--batch", str(batch), "--threads", str(threads)], environment)
    values = key_values(output)
    return int(values["samples"]) / float(values["train_seconds"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlp", required=True, help="path of the MLP example")
    parser.add_argument("--gemm", required=True, help="path of bench_gemm")
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    environment = benchmark_environment()
    print(f"machine: {os.uname().machine}, {os.cpu_count()} CPUs; "
          f"{cpu_model_name()}\n", flush=True)
    print(run([args.gemm, str(max(args.rounds, 3))], environment), flush=True)

    python = find_torch_python(environment)
    if python is None:
        print("PyTorch: not found; training is measured for tensortape only")
    else:
        print(f"PyTorch: {describe_torch(python, environment)} ({python})")
    print(f"training: one epoch of 60000 samples, SGD, median of {args.rounds} rounds\n")

    ours = {configuration: [] for configuration in CONFIGURATIONS}
    theirs = {configuration: [] for configuration in CONFIGURATIONS}
    for _ in range(args.rounds):
        for configuration in CONFIGURATIONS:
            hidden, batch, threads = configuration
            ours[configuration].append(tensortape_samples_per_second(
                args.mlp, args.data, hidden, batch, threads, environment))
            # The two-thread run is compared with tensortape's own one-thread
            # run, not with PyTorch.
            if python is not None and threads == 1:
                theirs[configuration].append(torch_samples_per_second(
                    python, args.data, hidden, batch, threads, environment))

    print(f"{'model':<16} {'batch':>5} {'threads':>7} {'tensortape/s':>13} {'PyTorch/s':>11} "
          f"{'ratio':>6}")
    one_thread = {}
    for configuration in CONFIGURATIONS:
        hidden, batch, threads = configuration
        model = "784-" + hidden.replace(",", "-") + "-10"
        ours_median = statistics.median(ours[configuration])
        if threads == 1:
            one_thread[(hidden, batch)] = ours_median
        if theirs[configuration]:
            theirs_median = statistics.median(theirs[configuration])
            print(f"{model:<16} {batch:>5} {threads:>7} {ours_median:>13,.0f} "
                  f"{theirs_median:>11,.0f} {ours_median / theirs_median:>6.2f}")
        else:
            print(f"{model:<16} {batch:>5} {threads:>7} {ours_median:>13,.0f} {'-':>11} "
                  f"{'-':>6}")
    for configuration in CONFIGURATIONS:
        hidden, batch, threads = configuration
        if threads > 1 and (hidden, batch) in one_thread:
            speedup = statistics.median(ours[configuration]) / one_thread[(hidden, batch)]
            print(f"tensortape speed-up on {threads} threads, 784-{hidden.replace(',', '-')}-10 "
                  f"batch {batch}: {speedup:.2f}")


def cpu_model_name():
    """Return the CPU model from /proc/cpuinfo, or 'CPU model unknown'."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU model unknown"


if __name__ == "__main__":
    main()
