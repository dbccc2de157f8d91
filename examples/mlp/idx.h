/* Reader for labelled image data sets in the IDX format of MNIST and
 * Fashion-MNIST.
 *
 * An IDX file starts with a big-endian 32-bit magic number 0x0000TTDD, where
 * TT is the element type (0x08, unsigned byte) and DD the number of
 * dimensions. Each dimension's size follows as a big-endian 32-bit integer,
 * then the elements, in row-major order. An image file has magic 0x00000803
 * and the dimensions count × rows × cols; a label file has magic 0x00000801
 * and the single dimension count.
 *
 * The reader trusts nothing in a file. It checks the magic numbers, that no
 * dimension is zero and that the data size fits in size_t. The file must
 * contain exactly the data its header declares, with no bytes missing and
 * none left over. Every label must be below the number of classes, and the
 * image and label files must have the same number of samples. Buffers grow
 * by doubling as data arrives, so a header that claims more data than the
 * file contains costs at most 64 KiB or twice the size of the data actually
 * read, whichever is larger.
 *
 * When built with HAVE_ZLIB defined (and linked with zlib), it reads gzip
 * files and uncompressed files alike. Without zlib it reads uncompressed files
 * only, and reports a gzip file as an error.
 */
#ifndef MLP_IDX_H
#define MLP_IDX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Recommended size of an error message buffer. A message names up to two
 * file paths. */
#define IDX_MESSAGE_MAX 4608

/* One set of labelled images, such as the training or the test set. */
typedef struct idx_dataset {
    size_t count;        /* number of samples */
    size_t rows;         /* image height in pixels */
    size_t cols;         /* image width in pixels */
    uint8_t *pixels;     /* count images of rows × cols bytes, each row-major */
    uint8_t *labels;     /* count class indices, each below the class count */
    char *images_path;   /* path of the image file that was read */
    char *labels_path;   /* path of the label file that was read */
} idx_dataset;

/* Loads the image file `images_name` and the label file `labels_name` from
 * the directory `dir` into `dataset`. For each file it opens DIR/NAME if that
 * exists and DIR/NAME.gz otherwise. Every label must be below `n_classes`.
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
