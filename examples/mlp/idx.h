/* Reader for labelled image data sets in the IDX format of MNIST and
 * Fashion-MNIST.
 *
 * An IDX file starts with a big-endian 32-bit magic number: two zero bytes,
 * the element type code and the number of dimensions. Each dimension's size
 * follows as a big-endian 32-bit integer, then the elements in row-major
 * order. The reader accepts only element type 0x08 (unsigned byte). An image
 * file has 3 dimensions (image count, row count, column count), so its magic
 * number is 0x00000803; a label file has 1 dimension (label count) and magic
 * number 0x00000801.
 *
 * The reader trusts nothing in a file. It checks each byte of the magic
 * number, that no dimension is zero, and that the data size fits in size_t.
 * The file must contain exactly the data its header declares, with no bytes
 * missing and none left over. Every label must be below the number of
 * classes, and the image and label files must have the same number of
 * samples.
 *
 * A file that starts with the gzip signature (0x1f 0x8b) is decompressed
 * first. One or more gzip members may follow each other, as `cat a.gz b.gz`
 * produces. Any other byte after the last member is an error, and so are a
 * corrupt or truncated stream and a checksum mismatch. The other checks then
 * apply to the decompressed bytes. Without zlib (HAVE_ZLIB undefined) the
 * reader reports a gzip file as an error.
 *
 * Memory follows the bytes that actually exist, never a size that a header
 * only claims. A file is read into a buffer that grows by doubling as data
 * arrives, and the header's sizes are compared with the bytes present before
 * any buffer of that size is made. Decompression also grows its buffer by
 * doubling, from 64 KiB, and stops one byte past the size the header
 * declares. So a header that claims gigabytes costs nothing, and gzip data
 * that decompresses to more than its header declares costs no more than the
 * declared size plus one byte, or 64 KiB if that is larger.
 */
#ifndef MLP_IDX_H
#define MLP_IDX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Recommended size of an error message buffer. A message names up to two
 * file paths. */
#define IDX_MESSAGE_MAX 4608

/* Kind of IDX file, which fixes its number of dimensions. */
typedef enum idx_kind {
    IDX_IMAGES, /* 3 dimensions: image count, row count, column count */
    IDX_LABELS, /* 1 dimension: label count */
} idx_kind;

/* The elements of one IDX file that passed every check. */
typedef struct idx_array {
    size_t count;        /* images or labels */
    size_t rows;         /* image height in pixels; 1 for labels */
    size_t cols;         /* image width in pixels; 1 for labels */
    uint8_t *data;       /* count × rows × cols bytes, row-major */
    size_t data_offset;  /* byte offset of the first element, after the header */
    bool compressed;     /* whether the file was gzip-compressed, so that
                            offsets count decompressed bytes */
} idx_array;

/* One set of labelled images, such as the training or the test set. */
typedef struct idx_dataset {
    size_t count;        /* number of samples */
    size_t rows;         /* image height in pixels */
    size_t cols;         /* image width in pixels */
    uint8_t *pixels;     /* count images of rows × cols bytes, each row-major */
    uint8_t *labels;     /* count class indices, each below the class count */
    char *images_path;   /* path or name of the image file that was read */
    char *labels_path;   /* path or name of the label file that was read */
} idx_dataset;

/* Parses the `size` bytes at `bytes` as an IDX file of kind `kind`, plain or
 * gzip-compressed, without touching the file system. `name` stands for the
 * file in messages. The bytes are only read; `bytes` may be NULL when `size`
 * is 0.
 *
 * Returns true on success; the caller then owns `array->data` and releases
 * it with idx_array_free(). On failure returns false, leaves `array` empty
 * and writes a one-line message "NAME: what is wrong" to `message`, which
 * has room for `message_size` bytes (truncated if longer). */
bool idx_parse(idx_array *array, idx_kind kind, const uint8_t *bytes, size_t size,
               const char *name, char *message, size_t message_size);

/* Frees the array's data and leaves it empty. NULL is ignored. */
void idx_array_free(idx_array *array);

/* Parses an image file and a label file in memory into `dataset`. Each gets
 * the checks of idx_parse(). Then every label must be below `n_classes`, and
 * both files must contain the same number of samples. `images_name` and `labels_name` stand for the files in messages
 * and are copied into the dataset.
 *
 * Returns true on success; the caller then owns the dataset's memory and
 * releases it with idx_dataset_free(). On failure returns false, leaves
 * `dataset` empty and writes a message as idx_parse() does. */
bool idx_dataset_parse(idx_dataset *dataset, const uint8_t *image_bytes, size_t image_size,
                       const char *images_name, const uint8_t *label_bytes, size_t label_size,
                       const char *labels_name, unsigned n_classes, char *message,
                       size_t message_size);

/* Loads the image file `images_name` and the label file `labels_name` from
 * the directory `dir` into `dataset`, with the checks of idx_dataset_parse().
 * For each file it opens DIR/NAME if that exists and DIR/NAME.gz otherwise.
 *
 * Each path must be a regular file or a pipe (a FIFO made with mkfifo). A
 * directory, device or socket is rejected. A pipe is read only up to the
 * size its header declares plus one byte, so a writer that sends more is
 * reported without buffering the rest, and gzip data from a pipe is
 * limited to 1 GiB. Opening never waits
 * for a writer: a FIFO that no process has open for writing at that moment
 * reads as empty and is rejected as an empty file.
 *
 * Returns true on success; the caller then owns the dataset's memory and
 * releases it with idx_dataset_free(). On failure returns false, leaves
 * `dataset` empty (safe to pass to idx_dataset_free()) and writes a one-line
 * message of the form "PATH: what is wrong" to `message`, which has room for
 * `message_size` bytes. A message that does not fit is truncated, which with
 * IDX_MESSAGE_MAX bytes happens only for paths of over 2 KiB. */
bool idx_dataset_load(idx_dataset *dataset, const char *dir, const char *images_name,
                      const char *labels_name, unsigned n_classes, char *message,
                      size_t message_size);

/* Frees the dataset's buffers and leaves it empty. NULL is ignored. */
void idx_dataset_free(idx_dataset *dataset);

#endif /* MLP_IDX_H */
