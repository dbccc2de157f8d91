/* Run-time version of the library. The values come from the generated
 * tensortape_config.h, so they are those of the build that produced this
 * library, not those of the headers a program was compiled with. */
#include "tensortape.h"

/* Expands a macro's value before turning it into a string literal. */
#define TT_STRINGIFY_VALUE(x) #x
#define TT_STRINGIFY(x) TT_STRINGIFY_VALUE(x)

const char *tt_version(void)
{
    return TT_STRINGIFY(TT_VERSION_MAJOR) "." TT_STRINGIFY(TT_VERSION_MINOR) "." TT_STRINGIFY(
        TT_VERSION_PATCH);
}

int tt_version_number(void)
{
    return TT_VERSION_NUMBER;
}
