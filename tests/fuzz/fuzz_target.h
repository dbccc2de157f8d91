/* The entry point that every fuzz target defines, as libFuzzer calls it. The
 * replay driver (replay.c) calls the same function without libFuzzer. */
#ifndef TT_FUZZ_TARGET_H
#define TT_FUZZ_TARGET_H

#include <stddef.h>
#include <stdint.h>

/* Runs the code under test on the `size` bytes at `data`, which it must not
 * modify or keep. Returns 0; libFuzzer reserves other values. A bug shows as
 * a crash, an abort or a sanitizer report. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif /* TT_FUZZ_TARGET_H */
