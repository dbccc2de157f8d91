/* Status names and error messages. */
#include <stdio.h>

#include "internal.h"

const char *tt_status_str(tt_status status)
{
    switch (status) {
    case TT_OK:
        return "success";
    case TT_ERR_ARG:
        return "invalid argument";
    case TT_ERR_SHAPE:
        return "shape mismatch";
    case TT_ERR_RANGE:
        return "value out of range";
    case TT_ERR_NOMEM:
        return "out of memory";
    case TT_ERR_STATE:
        return "invalid state";
    case TT_ERR_NUMERIC:
        return "NaN or infinity";
    case TT_ERR_IO:
        return "input/output error";
    case TT_ERR_FORMAT:
        return "invalid file format";
    }
    return "unknown status";
}

bool tt_status_is_failure(tt_status status)
{
    switch (status) {
    case TT_OK:
        return false;
    case TT_ERR_ARG:
    case TT_ERR_SHAPE:
    case TT_ERR_RANGE:
    case TT_ERR_NOMEM:
    case TT_ERR_STATE:
    case TT_ERR_NUMERIC:
    case TT_ERR_IO:
    case TT_ERR_FORMAT:
        return true;
    }
    return false;
}

void tt_error_vset(tt_error *err, tt_status status, const char *format, va_list args)
{
    if (err == NULL)
        return;
    err->status = status;
    /* A message longer than the buffer is cut; vsnprintf always terminates it. */
    vsnprintf(err->message, sizeof err->message, format, args);
}

void tt_error_set(tt_error *err, tt_status status, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    tt_error_vset(err, status, format, args);
    va_end(args);
}
