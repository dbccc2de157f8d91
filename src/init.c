/* Weight initializers: Xavier (Glorot) and Kaiming (He), uniform and normal,
 * with the formulas of PyTorch 1.13's torch.nn.init given in tensortape.h.
 * A weight is d_out × d_in, so fan_in is its column count and fan_out its
 * row count. */
#include <math.h>

#include "internal.h"

/* √3: a uniform distribution on [−a, a] has standard deviation a/√3. */
#define SQRT_3 1.7320508075688772935

double tt_init_gain(tt_nonlinearity nonlinearity, double slope)
{
    switch (nonlinearity) {
    case TT_NONLINEARITY_LINEAR:
    case TT_NONLINEARITY_SIGMOID:
        return 1.0;
    case TT_NONLINEARITY_TANH:
        return 5.0 / 3.0;
    case TT_NONLINEARITY_RELU:
        return sqrt(2.0);
    case TT_NONLINEARITY_LEAKY_RELU:
        return isfinite(slope) ? sqrt(2.0 / (1.0 + slope * slope)) : NAN;
    case TT_NONLINEARITY_SELU:
        return 0.75;
    }
    return NAN;
}

/* Checks the arguments every initializer shares. */
static bool check_target(const char *caller, const tt_tensor *tensor, const tt_rng *rng,
                         tt_error *err)
{
    if (tensor == NULL || rng == NULL) {
        tt_error_set(err, TT_ERR_ARG, "%s: %s is NULL", caller, tensor == NULL ? "tensor" : "rng");
        return false;
    }
    if (tensor->tape != NULL) {
        char label[TT_LABEL_MAX];
        tt_tensor_label(tensor, "tensor", label);
        tt_error_set(err, TT_ERR_ARG,
                     "%s: %s is a tape tensor; initialize caller-owned parameters", caller,
                     label);
        return false;
    }
    return true;
}

/* Fills the tensor from N(0, std²) or, with `uniform`, from U(−√3·std, √3·std). */
static void fill(tt_tensor *tensor, tt_rng *rng, double std, bool uniform)
{
    if (uniform) {
        const tt_real bound = (tt_real)(SQRT_3 * std);
        tt_tensor_fill_uniform(tensor, rng, -bound, bound);
    } else {
        tt_tensor_fill_normal(tensor, rng, 0, (tt_real)std);
    }
}

static tt_status xavier(const char *caller, tt_tensor *tensor, tt_rng *rng, double gain,
                        bool uniform, tt_error *err)
{
    if (!check_target(caller, tensor, rng, err))
        return TT_ERR_ARG;
    if (!isfinite(gain) || gain < 0.0) {
        tt_error_set(err, TT_ERR_ARG, "%s: gain is %g; it must be finite and at least 0", caller,
                     gain);
        return TT_ERR_ARG;
    }
    const double fan_sum = (double)tensor->rows + (double)tensor->cols;
    fill(tensor, rng, gain * sqrt(2.0 / fan_sum), uniform);
    return TT_OK;
}

static tt_status kaiming(const char *caller, tt_tensor *tensor, tt_rng *rng, tt_fan_mode mode,
                         tt_nonlinearity nonlinearity, double slope, bool uniform,
                         tt_error *err)
{
    if (!check_target(caller, tensor, rng, err))
        return TT_ERR_ARG;
    if (mode != TT_FAN_IN && mode != TT_FAN_OUT) {
        tt_error_set(err, TT_ERR_ARG, "%s: unknown fan mode %d; use TT_FAN_IN or TT_FAN_OUT",
                     caller, (int)mode);
        return TT_ERR_ARG;
    }
    const double gain = tt_init_gain(nonlinearity, slope);
    if (isnan(gain)) {
        if (nonlinearity == TT_NONLINEARITY_LEAKY_RELU)
            tt_error_set(err, TT_ERR_ARG, "%s: leaky ReLU slope is %g; it must be finite", caller,
                         slope);
        else
            tt_error_set(err, TT_ERR_ARG, "%s: unknown nonlinearity %d", caller,
                         (int)nonlinearity);
        return TT_ERR_ARG;
    }
    const size_t fan = mode == TT_FAN_IN ? tensor->cols : tensor->rows;
    fill(tensor, rng, gain / sqrt((double)fan), uniform);
    return TT_OK;
}

tt_status tt_init_xavier_uniform(tt_tensor *tensor, tt_rng *rng, double gain, tt_error *err)
{
    return xavier("tt_init_xavier_uniform", tensor, rng, gain, true, err);
}

tt_status tt_init_xavier_normal(tt_tensor *tensor, tt_rng *rng, double gain, tt_error *err)
{
    return xavier("tt_init_xavier_normal", tensor, rng, gain, false, err);
}

tt_status tt_init_kaiming_uniform(tt_tensor *tensor, tt_rng *rng, tt_fan_mode mode,
                                  tt_nonlinearity nonlinearity, double slope, tt_error *err)
{
    return kaiming("tt_init_kaiming_uniform", tensor, rng, mode, nonlinearity, slope, true, err);
}

tt_status tt_init_kaiming_normal(tt_tensor *tensor, tt_rng *rng, tt_fan_mode mode,
                                 tt_nonlinearity nonlinearity, double slope, tt_error *err)
{
    return kaiming("tt_init_kaiming_normal", tensor, rng, mode, nonlinearity, slope, false, err);
}
