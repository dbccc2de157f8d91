/* Fuzz target for the IDX reader of the MLP example. Each input is parsed
 * from memory three ways: as an image file, as a label file, and as the two
 * joined, where the first 2 bytes (big-endian) give the length of the image
 * file and the label file follows it. Besides the sanitizers' checks, the
 * target aborts when a result breaks the reader's contract. That is success
 * with a message, failure without a message "NAME: ...", or a label not
 * below the class count. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "idx.h"

#define N_CLASSES 10

/* Aborts unless `message` agrees with `ok`: empty on success, and on
 * failure "NAME: " followed by text. */
static void check_message(bool ok, const char *message, const char *name)
{
    size_t name_length = strlen(name);
    if (ok && message[0] != '\0') {
        abort();
    }
    if (!ok && (strncmp(message, name, name_length) != 0 || message[name_length] != ':' ||
                message[name_length + 1] != ' ' || message[name_length + 2] == '\0')) {
        abort();
    }
}

static void parse_one_file(const uint8_t *data, size_t size, idx_kind kind)
{
    char message[IDX_MESSAGE_MAX];
    idx_array array;
    bool ok = idx_parse(&array, kind, data, size, "input", message, sizeof message);
    check_message(ok, message, "input");
    if (ok) {
        if (array.count == 0 || array.rows == 0 || array.cols == 0 || array.data == NULL) {
            abort();
        }
        /* Reading the last element lets AddressSanitizer check the buffer's
         * length against the sizes. */
        volatile uint8_t last = array.data[array.count * array.rows * array.cols - 1];
        (void)last;
    } else if (array.data != NULL || array.count != 0) {
        abort();
    }
    idx_array_free(&array);
}

static void parse_pair(const uint8_t *data, size_t size)
{
    size_t image_size = ((size_t)data[0] << 8) | data[1];
    const uint8_t *image_bytes = data + 2;
    size_t rest = size - 2;
    if (image_size > rest) {
        image_size = rest;
    }
    char message[IDX_MESSAGE_MAX];
    idx_dataset dataset;
    bool ok = idx_dataset_parse(&dataset, image_bytes, image_size, "images",
                                image_bytes + image_size, rest - image_size, "labels", N_CLASSES,
                                message, sizeof message);
    /* A failure names whichever file it is about. */
    const char *name = strncmp(message, "labels: ", 8) == 0 ? "labels" : "images";
    check_message(ok, message, name);
    if (ok) {
        for (size_t i = 0; i < dataset.count; i++) {
            if (dataset.labels[i] >= N_CLASSES) {
                abort();
            }
        }
        volatile uint8_t last = dataset.pixels[dataset.count * dataset.rows * dataset.cols - 1];
        (void)last;
    } else if (dataset.pixels != NULL || dataset.labels != NULL) {
        abort();
    }
    idx_dataset_free(&dataset);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    parse_one_file(data, size, IDX_IMAGES);
    parse_one_file(data, size, IDX_LABELS);
    if (size >= 2) {
        parse_pair(data, size);
    }
    return 0;
}
