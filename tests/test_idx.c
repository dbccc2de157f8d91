/* The IDX reader of the MLP example (examples/mlp/idx.c): valid plain and
 * gzip files round-trip, and each kind of malformed file is rejected with
 * its exact message. Files are written to a fresh temporary directory by
 * each test; gzip data is made with zlib. */
/* For mknod and makedev. */
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef HAVE_ZLIB
#include <zlib.h>
#endif

#include "helpers.h"
#include "idx.h"

#define N_CLASSES 10

/* Large enough for every file built here. */
#define FILE_MAX 4096

/* Name of the in-memory bytes in messages. */
#define NAME "data.idx"

/* A file's bytes, built in memory. */
typedef struct byte_buffer {
    uint8_t bytes[FILE_MAX];
    size_t size;
} byte_buffer;

static char temp_dir[256];
static char message[IDX_MESSAGE_MAX];

static void make_temp_dir(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(temp_dir, sizeof temp_dir, "%s/test_idx.XXXXXX",
             base != NULL && base[0] != '\0' ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(temp_dir));
}

/* Removes the temporary directory and the files written into it. */
static void remove_temp_dir(void)
{
    DIR *dir = opendir(temp_dir);
    if (dir == NULL) {
        return;
    }
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0) {
            char path[512];
            snprintf(path, sizeof path, "%s/%s", temp_dir, entry->d_name);
            unlink(path);
        }
    }
    closedir(dir);
    rmdir(temp_dir);
}

static void write_file(const char *name, const byte_buffer *file)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", temp_dir, name);
    FILE *stream = fopen(path, "wb");
    ck_assert_ptr_nonnull(stream);
    ck_assert_uint_eq(fwrite(file->bytes, 1, file->size, stream), file->size);
    ck_assert_int_eq(fclose(stream), 0);
}

static void append_u32(byte_buffer *file, uint32_t value)
{
    ck_assert_uint_le(file->size + 4, FILE_MAX);
    file->bytes[file->size++] = (uint8_t)(value >> 24);
    file->bytes[file->size++] = (uint8_t)(value >> 16);
    file->bytes[file->size++] = (uint8_t)(value >> 8);
    file->bytes[file->size++] = (uint8_t)value;
}

static void append_byte(byte_buffer *file, uint8_t value)
{
    ck_assert_uint_lt(file->size, FILE_MAX);
    file->bytes[file->size++] = value;
}

/* Pixel i of an image file: a pattern that differs between neighbours. */
static uint8_t pixel_value(size_t i)
{
    return (uint8_t)(i * 37 + 11);
}

/* Label i of a label file: cycles through the classes. */
static uint8_t label_value(size_t i)
{
    return (uint8_t)((i * 3 + 1) % N_CLASSES);
}

/* An image file of `count` images of rows × cols pixels. */
static byte_buffer image_file(uint32_t count, uint32_t rows, uint32_t cols)
{
    byte_buffer file = {.size = 0};
    append_u32(&file, 0x00000803);
    append_u32(&file, count);
    append_u32(&file, rows);
    append_u32(&file, cols);
    for (size_t i = 0; i < (size_t)count * rows * cols; i++) {
        append_byte(&file, pixel_value(i));
    }
    return file;
}

/* A label file of `count` labels. */
static byte_buffer label_file(uint32_t count)
{
    byte_buffer file = {.size = 0};
    append_u32(&file, 0x00000801);
    append_u32(&file, count);
    for (size_t i = 0; i < count; i++) {
        append_byte(&file, label_value(i));
    }
    return file;
}

/* Parses `file` as `kind` and checks that it fails with `expected`. */
static void assert_parse_fails(idx_kind kind, const byte_buffer *file, const char *expected)
{
    idx_array array;
    memset(&array, 0xa5, sizeof array);
    ck_assert(!idx_parse(&array, kind, file->bytes, file->size, NAME, message, sizeof message));
    ck_assert_str_eq(message, expected);
    ck_assert_ptr_null(array.data);
    ck_assert_uint_eq(array.count, 0);
}

/* Writes both files to the temporary directory, loads them and checks that
 * loading fails with `expected` after "DIR/" and leaves the dataset empty. */
static void assert_load_fails(const char *images_name, const byte_buffer *images,
                              const char *labels_name, const byte_buffer *labels,
                              const char *expected_after_dir)
{
    write_file(images_name, images);
    write_file(labels_name, labels);
    idx_dataset dataset;
    memset(&dataset, 0xa5, sizeof dataset);
    ck_assert(!idx_dataset_load(&dataset, temp_dir, "images", "labels", N_CLASSES, message,
                                sizeof message));
    char expected[IDX_MESSAGE_MAX];
    snprintf(expected, sizeof expected, "%s/%s", temp_dir, expected_after_dir);
    ck_assert_str_eq(message, expected);
    ck_assert_ptr_null(dataset.pixels);
    ck_assert_ptr_null(dataset.labels);
    ck_assert_ptr_null(dataset.images_path);
    ck_assert_uint_eq(dataset.count, 0);
}

/* Checks every field of a dataset loaded from image_file(count, rows, cols)
 * and label_file(count). */
static void assert_dataset_matches(const idx_dataset *dataset, size_t count, size_t rows,
                                   size_t cols)
{
    ck_assert_uint_eq(dataset->count, count);
    ck_assert_uint_eq(dataset->rows, rows);
    ck_assert_uint_eq(dataset->cols, cols);
    for (size_t i = 0; i < count * rows * cols; i++) {
        ck_assert_uint_eq(dataset->pixels[i], pixel_value(i));
    }
    for (size_t i = 0; i < count; i++) {
        ck_assert_uint_eq(dataset->labels[i], label_value(i));
    }
}

START_TEST(plain_files_round_trip)
{
    byte_buffer images = image_file(3, 2, 4);
    byte_buffer labels = label_file(3);
    write_file("images", &images);
    write_file("labels", &labels);
    idx_dataset dataset;
    ck_assert(idx_dataset_load(&dataset, temp_dir, "images", "labels", N_CLASSES, message,
                               sizeof message));
    ck_assert_str_eq(message, "");
    assert_dataset_matches(&dataset, 3, 2, 4);
    char expected_path[512];
    snprintf(expected_path, sizeof expected_path, "%s/images", temp_dir);
    ck_assert_str_eq(dataset.images_path, expected_path);
    snprintf(expected_path, sizeof expected_path, "%s/labels", temp_dir);
    ck_assert_str_eq(dataset.labels_path, expected_path);
    idx_dataset_free(&dataset);
    ck_assert_ptr_null(dataset.pixels);
    ck_assert_uint_eq(dataset.count, 0);
}
END_TEST

START_TEST(parse_from_memory_round_trips)
{
    byte_buffer images = image_file(2, 3, 5);
    idx_array array;
    ck_assert(idx_parse(&array, IDX_IMAGES, images.bytes, images.size, NAME, message,
                        sizeof message));
    ck_assert_uint_eq(array.count, 2);
    ck_assert_uint_eq(array.rows, 3);
    ck_assert_uint_eq(array.cols, 5);
    ck_assert_uint_eq(array.data_offset, 16);
    ck_assert(!array.compressed);
    for (size_t i = 0; i < 30; i++) {
        ck_assert_uint_eq(array.data[i], pixel_value(i));
    }
    idx_array_free(&array);
    ck_assert_ptr_null(array.data);

    byte_buffer labels = label_file(4);
    ck_assert(idx_parse(&array, IDX_LABELS, labels.bytes, labels.size, NAME, message,
                        sizeof message));
    ck_assert_uint_eq(array.count, 4);
    ck_assert_uint_eq(array.rows, 1);
    ck_assert_uint_eq(array.cols, 1);
    ck_assert_uint_eq(array.data_offset, 8);
    for (size_t i = 0; i < 4; i++) {
        ck_assert_uint_eq(array.data[i], label_value(i));
    }
    idx_array_free(&array);
}
END_TEST

START_TEST(dataset_parse_from_memory_round_trips)
{
    byte_buffer images = image_file(5, 2, 2);
    byte_buffer labels = label_file(5);
    idx_dataset dataset;
    ck_assert(idx_dataset_parse(&dataset, images.bytes, images.size, "i", labels.bytes,
                                labels.size, "l", N_CLASSES, message, sizeof message));
    assert_dataset_matches(&dataset, 5, 2, 2);
    ck_assert_str_eq(dataset.images_path, "i");
    ck_assert_str_eq(dataset.labels_path, "l");
    idx_dataset_free(&dataset);
}
END_TEST

START_TEST(empty_file_is_rejected)
{
    byte_buffer file = {.size = 0};
    assert_parse_fails(IDX_IMAGES, &file, NAME ": the file is empty; expected an IDX image file");
    assert_parse_fails(IDX_LABELS, &file, NAME ": the file is empty; expected an IDX label file");
}
END_TEST

START_TEST(short_magic_number_is_rejected)
{
    byte_buffer file = {.bytes = {0, 0, 8}, .size = 3};
    assert_parse_fails(IDX_IMAGES, &file,
                       NAME ": truncated: the file ends after 3 of the 4 bytes of the magic number");
}
END_TEST

START_TEST(magic_without_zero_bytes_is_rejected)
{
    byte_buffer file = image_file(1, 1, 1);
    file.bytes[1] = 0x01;
    assert_parse_fails(IDX_IMAGES, &file,
                       NAME ": invalid magic number 0x00010803: an IDX file starts with two zero "
                            "bytes");
}
END_TEST

START_TEST(other_element_types_are_rejected)
{
    byte_buffer file = image_file(1, 1, 1);
    file.bytes[2] = 0x0d;
    assert_parse_fails(IDX_IMAGES, &file,
                       NAME ": unsupported element type 0x0d (32-bit float) in magic number "
                            "0x00000d03; only 0x08 (unsigned byte) is supported");
    file.bytes[2] = 0x09;
    assert_parse_fails(IDX_IMAGES, &file,
                       NAME ": unsupported element type 0x09 (signed byte) in magic number "
                            "0x00000903; only 0x08 (unsigned byte) is supported");
    file.bytes[2] = 0x07;
    assert_parse_fails(IDX_IMAGES, &file,
                       NAME ": invalid element type 0x07 in magic number 0x00000703; only 0x08 "
                            "(unsigned byte) is supported");
}
END_TEST

START_TEST(wrong_dimension_count_is_rejected)
{
    byte_buffer file = image_file(1, 1, 1);
    file.bytes[3] = 2;
    assert_parse_fails(IDX_IMAGES, &file,
                       NAME ": magic number 0x00000802 declares 2 dimensions, but an IDX image "
                            "file has 3 (image count, row count, column count)");
    byte_buffer labels = label_file(1);
    assert_parse_fails(IDX_IMAGES, &labels,
                       NAME ": magic number 0x00000801 declares 1 dimension, but an IDX image "
                            "file has 3 (image count, row count, column count) (this is an IDX "
                            "label file)");
    assert_parse_fails(IDX_LABELS, &file,
                       NAME ": magic number 0x00000802 declares 2 dimensions, but an IDX label "
                            "file has 1 (label count)");
    byte_buffer images = image_file(1, 1, 1);
    assert_parse_fails(IDX_LABELS, &images,
                       NAME ": magic number 0x00000803 declares 3 dimensions, but an IDX label "
                            "file has 1 (label count) (this is an IDX image file)");
}
END_TEST

START_TEST(truncated_header_is_rejected)
{
    byte_buffer file = image_file(1, 1, 1);
    file.size = 10;
    assert_parse_fails(IDX_IMAGES, &file,
                       NAME ": truncated: the file ends after 10 of the 16 header bytes");
    byte_buffer labels = label_file(1);
    labels.size = 4;
    assert_parse_fails(IDX_LABELS, &labels,
                       NAME ": truncated: the file ends after 4 of the 8 header bytes");
}
END_TEST

START_TEST(zero_dimension_is_rejected)
{
    byte_buffer file = image_file(1, 1, 1);
    file.bytes[11] = 0; /* row count, at bytes 8 to 11 */
    assert_parse_fails(IDX_IMAGES, &file,
                       NAME ": invalid header: the row count at byte offset 8 is 0");
    byte_buffer empty_labels = label_file(0);
    assert_parse_fails(IDX_LABELS, &empty_labels,
                       NAME ": invalid header: the label count at byte offset 4 is 0");
}
END_TEST

START_TEST(overflowing_sizes_are_rejected)
{
    byte_buffer file = {.size = 0};
    append_u32(&file, 0x00000803);
    append_u32(&file, UINT32_MAX);
    append_u32(&file, UINT32_MAX);
    append_u32(&file, UINT32_MAX);
    /* (2^32 - 1)^3 bytes exceed SIZE_MAX on 32-bit and 64-bit systems. */
    assert_parse_fails(IDX_IMAGES, &file,
                       NAME ": invalid header: 4294967295 images of 4294967295x4294967295 pixels "
                            "do not fit in memory");
}
END_TEST

START_TEST(huge_claim_in_small_file_is_truncated)
{
    /* The header claims about 2.8e14 bytes. Allocating them would fail and
     * report running out of memory; the reader instead compares the claim
     * with the bytes present. */
    byte_buffer file = {.size = 0};
    append_u32(&file, 0x00000803);
    append_u32(&file, UINT32_MAX);
    append_u32(&file, 65535);
    append_u32(&file, 1);
    for (int i = 0; i < 7; i++) {
        append_byte(&file, 1);
    }
    if (sizeof(size_t) < 8) {
        /* A 32-bit size_t cannot even hold the claim. */
        assert_parse_fails(IDX_IMAGES, &file,
                           NAME ": invalid header: 4294967295 images of 65535x1 pixels do not fit "
                                "in memory");
    } else {
        assert_parse_fails(IDX_IMAGES, &file,
                           NAME ": truncated: the header declares 4294967295 images of 65535x1 "
                                "pixels (281470681677825 bytes), but the file ends after 7 of "
                                "them, at byte offset 23");
    }
}
END_TEST

START_TEST(truncated_data_is_rejected)
{
    byte_buffer images = image_file(3, 2, 2);
    images.size -= 7;
    assert_parse_fails(IDX_IMAGES, &images,
                       NAME ": truncated: the header declares 3 images of 2x2 pixels (12 bytes), "
                            "but the file ends after 5 of them, at byte offset 21");
    byte_buffer labels = label_file(6);
    labels.size -= 1;
    assert_parse_fails(IDX_LABELS, &labels,
                       NAME ": truncated: the header declares 6 labels (6 bytes), but the file "
                            "ends after 5 of them, at byte offset 13");
}
END_TEST

START_TEST(trailing_bytes_are_rejected)
{
    byte_buffer images = image_file(3, 2, 2);
    append_byte(&images, 0);
    append_byte(&images, 0);
    assert_parse_fails(IDX_IMAGES, &images,
                       NAME ": 2 unexpected bytes at byte offset 28, after the 3 images of 2x2 "
                            "pixels the header declares");
}
END_TEST

/* ---- Pipes and special files ------------------------------------------- */

/* Seconds a test of this part may take: a reader that waits for a writer
 * that never comes fails on this timeout instead of hanging the suite. */
#define PIPE_TEST_TIMEOUT_SECONDS 20

/* Bytes of filler that a pipe writer sends after its file at most. */
#define PIPE_FILLER_MAX ((size_t)64 << 20)

/* A process writing to a FIFO, and a reader that keeps the FIFO open so
 * that the writer's open() returns before the code under test opens it. */
typedef struct pipe_writer {
    pid_t pid;
    int reader;
} pipe_writer;

/* Creates the FIFO temp_dir/NAME and starts a child that writes `file`
 * into it, then `filler` zero bytes (stopping early when the reader goes
 * away), then stays alive with the FIFO open if `stay_open`. Returns once
 * the first bytes are in the pipe. */
static pipe_writer start_pipe_writer(const char *name, const byte_buffer *file, size_t filler,
                                     bool stay_open)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", temp_dir, name);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    pipe_writer writer;
    writer.reader = open(path, O_RDONLY | O_NONBLOCK);
    ck_assert_int_ge(writer.reader, 0);
    writer.pid = fork();
    ck_assert_int_ge(writer.pid, 0);
    if (writer.pid == 0) {
        signal(SIGPIPE, SIG_IGN);
        int fd = open(path, O_WRONLY);
        if (fd < 0 || write(fd, file->bytes, file->size) != (ssize_t)file->size) {
            _exit(1);
        }
        static const uint8_t zeros[4096];
        for (size_t sent = 0; sent < filler; sent += sizeof zeros) {
            if (write(fd, zeros, sizeof zeros) < 0) {
                break;
            }
        }
        while (stay_open) {
            pause();
        }
        _exit(0);
    }
    struct pollfd ready = {.fd = writer.reader, .events = POLLIN};
    ck_assert_int_eq(poll(&ready, 1, PIPE_TEST_TIMEOUT_SECONDS * 1000), 1);
    return writer;
}

/* Stops the writer and closes the extra reader. */
static void stop_pipe_writer(pipe_writer *writer)
{
    kill(writer->pid, SIGKILL);
    int status = 0;
    ck_assert_int_eq(waitpid(writer->pid, &status, 0), writer->pid);
    close(writer->reader);
}

/* Loads "images" and "labels" from temp_dir and checks that loading fails
 * with `expected` after "DIR/". */
static void assert_dataset_load_fails(const char *expected_after_dir)
{
    idx_dataset dataset;
    ck_assert(!idx_dataset_load(&dataset, temp_dir, "images", "labels", N_CLASSES, message,
                                sizeof message));
    char expected[IDX_MESSAGE_MAX];
    snprintf(expected, sizeof expected, "%s/%s", temp_dir, expected_after_dir);
    ck_assert_str_eq(message, expected);
    ck_assert_ptr_null(dataset.pixels);
}

START_TEST(fifo_without_writer_reads_as_empty)
{
    char path[512];
    snprintf(path, sizeof path, "%s/images", temp_dir);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    assert_dataset_load_fails("images: the file is empty; expected an IDX image file");
}
END_TEST

START_TEST(fifo_is_read_in_full)
{
    byte_buffer images = image_file(3, 2, 2);
    byte_buffer labels = label_file(3);
    write_file("labels", &labels);
    pipe_writer writer = start_pipe_writer("images", &images, 0, false);
    idx_dataset dataset;
    bool loaded = idx_dataset_load(&dataset, temp_dir, "images", "labels", N_CLASSES, message,
                                   sizeof message);
    stop_pipe_writer(&writer);
    ck_assert_msg(loaded, "%s", message);
    ck_assert_uint_eq(dataset.count, 3);
    for (size_t i = 0; i < 12; i++) {
        ck_assert_uint_eq(dataset.pixels[i], pixel_value(i));
    }
    idx_dataset_free(&dataset);
}
END_TEST

START_TEST(fifo_reading_stops_after_declared_size)
{
    /* The writer sends 64 MiB after the 28 bytes of the file. The reader
     * stops one byte past them instead of buffering everything. */
    byte_buffer images = image_file(3, 2, 2);
    byte_buffer labels = label_file(3);
    write_file("labels", &labels);
    pipe_writer writer = start_pipe_writer("images", &images, PIPE_FILLER_MAX, true);
    assert_dataset_load_fails("images: unexpected data at byte offset 28, after the 3 images of "
                              "2x2 pixels the header declares");
    stop_pipe_writer(&writer);
}
END_TEST

START_TEST(fifo_bad_magic_rejected_before_end)
{
    /* The writer sends a bad magic number and keeps the pipe open, so only
     * a reader that checks the first 4 bytes returns. */
    byte_buffer images = {.size = 0};
    append_u32(&images, 0x00000000);
    pipe_writer writer = start_pipe_writer("images", &images, 0, true);
    assert_dataset_load_fails("images: invalid element type 0x00 in magic number 0x00000000; "
                              "only 0x08 (unsigned byte) is supported");
    stop_pipe_writer(&writer);
}
END_TEST

START_TEST(fifo_huge_claim_without_data_is_truncated)
{
    /* 60000 images of 1000x1000 pixels are 60 GB. The reader must not
     * allocate them before they arrive. */
    byte_buffer images = {.size = 0};
    append_u32(&images, 0x00000803);
    append_u32(&images, 60000);
    append_u32(&images, 1000);
    append_u32(&images, 1000);
    pipe_writer writer = start_pipe_writer("images", &images, 0, false);
    char expected[256];
    snprintf(expected, sizeof expected,
             "images: truncated: the header declares 60000 images of 1000x1000 pixels "
             "(%zu bytes), but the file ends after 0 of them, at byte offset 16",
             (size_t)60000 * 1000 * 1000);
    assert_dataset_load_fails(expected);
    stop_pipe_writer(&writer);
}
END_TEST

START_TEST(device_and_directory_are_rejected)
{
    char path[512];
    snprintf(path, sizeof path, "%s/images", temp_dir);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    assert_dataset_load_fails("images: is a directory, not a regular file or a pipe");
    ck_assert_int_eq(rmdir(path), 0);

    if (geteuid() != 0) {
        fprintf(stderr, "device_and_directory_are_rejected: no device case without root\n");
        return;
    }
    /* Major 1, minor 3 is /dev/null on Linux: it reads as empty. */
    ck_assert_msg(mknod(path, S_IFCHR | 0600, makedev(1, 3)) == 0, "mknod %s: %s", path,
                  strerror(errno));
    assert_dataset_load_fails("images: is a character device, not a regular file or a pipe");
}
END_TEST

START_TEST(label_out_of_range_is_rejected)
{
    byte_buffer images = image_file(4, 1, 1);
    byte_buffer labels = label_file(4);
    labels.bytes[8 + 2] = N_CLASSES;
    assert_load_fails("images", &images, "labels", &labels,
                      "labels: invalid label 10 for sample 2 at byte offset 10; labels must be "
                      "below 10");
    labels.bytes[8 + 2] = 255;
    assert_load_fails("images", &images, "labels", &labels,
                      "labels: invalid label 255 for sample 2 at byte offset 10; labels must be "
                      "below 10");
}
END_TEST

START_TEST(count_mismatch_is_rejected)
{
    byte_buffer images = image_file(4, 1, 1);
    byte_buffer labels = label_file(3);
    char expected[IDX_MESSAGE_MAX];
    snprintf(expected, sizeof expected, "labels: contains 3 labels, but %s/images contains 4 images",
             temp_dir);
    assert_load_fails("images", &images, "labels", &labels, expected);
}
END_TEST

START_TEST(file_errors_name_the_path)
{
    byte_buffer bad_images = image_file(1, 1, 1);
    bad_images.bytes[0] = 'P';
    byte_buffer labels = label_file(1);
    assert_load_fails("images", &bad_images, "labels", &labels,
                      "images: invalid magic number 0x50000803: an IDX file starts with two zero "
                      "bytes");

    byte_buffer images = image_file(1, 1, 1);
    byte_buffer bad_labels = label_file(2);
    bad_labels.size--;
    assert_load_fails("images", &images, "labels", &bad_labels,
                      "labels: truncated: the header declares 2 labels (2 bytes), but the file "
                      "ends after 1 of them, at byte offset 9");
}
END_TEST

START_TEST(missing_file_is_reported)
{
    byte_buffer images = image_file(1, 1, 1);
    write_file("images", &images);
    idx_dataset dataset;
    ck_assert(!idx_dataset_load(&dataset, temp_dir, "images", "labels", N_CLASSES, message,
                                sizeof message));
    char expected[IDX_MESSAGE_MAX];
    snprintf(expected, sizeof expected, "%s/labels: not found, and neither is labels.gz",
             temp_dir);
    ck_assert_str_eq(message, expected);
    ck_assert_ptr_null(dataset.pixels);
}
END_TEST

START_TEST(missing_directory_is_reported)
{
    char missing[512];
    snprintf(missing, sizeof missing, "%s/absent", temp_dir);
    idx_dataset dataset;
    ck_assert(!idx_dataset_load(&dataset, missing, "images", "labels", N_CLASSES, message,
                                sizeof message));
    char expected[IDX_MESSAGE_MAX];
    snprintf(expected, sizeof expected,
             "%s: cannot open the data directory: No such file or directory", missing);
    ck_assert_str_eq(message, expected);
}
END_TEST

#ifdef HAVE_ZLIB
/* Compresses `plain` into one gzip member with no file name and mtime 0,
 * so that its bytes are the same on every run. */
static byte_buffer gzip_member(const byte_buffer *plain)
{
    byte_buffer file = {.size = 0};
    z_stream stream;
    memset(&stream, 0, sizeof stream);
    ck_assert_int_eq(deflateInit2(&stream, Z_BEST_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                                  Z_DEFAULT_STRATEGY),
                     Z_OK);
    stream.next_in = (Bytef *)plain->bytes;
    stream.avail_in = (uInt)plain->size;
    stream.next_out = file.bytes;
    stream.avail_out = FILE_MAX;
    ck_assert_int_eq(deflate(&stream, Z_FINISH), Z_STREAM_END);
    file.size = FILE_MAX - stream.avail_out;
    deflateEnd(&stream);
    return file;
}

static void append_buffer(byte_buffer *file, const byte_buffer *tail)
{
    ck_assert_uint_le(file->size + tail->size, FILE_MAX);
    memcpy(file->bytes + file->size, tail->bytes, tail->size);
    file->size += tail->size;
}

START_TEST(gzip_files_round_trip)
{
    byte_buffer images = image_file(3, 4, 5);
    byte_buffer labels = label_file(3);
    byte_buffer images_gz = gzip_member(&images);
    byte_buffer labels_gz = gzip_member(&labels);
    write_file("images.gz", &images_gz);
    write_file("labels.gz", &labels_gz);
    idx_dataset dataset;
    ck_assert(idx_dataset_load(&dataset, temp_dir, "images", "labels", N_CLASSES, message,
                               sizeof message));
    assert_dataset_matches(&dataset, 3, 4, 5);
    char expected_path[512];
    snprintf(expected_path, sizeof expected_path, "%s/labels.gz", temp_dir);
    ck_assert_str_eq(dataset.labels_path, expected_path);
    idx_dataset_free(&dataset);
}
END_TEST

START_TEST(gzip_members_concatenate)
{
    /* The header and the first image in one member, the rest in another,
     * as `cat a.gz b.gz` produces. */
    byte_buffer images = image_file(2, 3, 3);
    byte_buffer head = {.size = 25};
    memcpy(head.bytes, images.bytes, head.size);
    byte_buffer tail = {.size = images.size - head.size};
    memcpy(tail.bytes, images.bytes + head.size, tail.size);
    byte_buffer file = gzip_member(&head);
    byte_buffer second = gzip_member(&tail);
    append_buffer(&file, &second);
    idx_array array;
    ck_assert(idx_parse(&array, IDX_IMAGES, file.bytes, file.size, NAME, message,
                        sizeof message));
    ck_assert_uint_eq(array.count, 2);
    ck_assert(array.compressed);
    for (size_t i = 0; i < 18; i++) {
        ck_assert_uint_eq(array.data[i], pixel_value(i));
    }
    idx_array_free(&array);
}
END_TEST

START_TEST(gzip_bad_header_is_rejected)
{
    byte_buffer labels = label_file(3);
    byte_buffer file = gzip_member(&labels);
    file.bytes[2] = 7; /* compression method; only 8 (deflate) exists */
    assert_parse_fails(IDX_LABELS, &file,
                       NAME ": corrupt gzip data at byte offset 4: unknown compression method");
}
END_TEST

START_TEST(gzip_bad_checksum_is_rejected)
{
    byte_buffer labels = label_file(3);
    byte_buffer file = gzip_member(&labels);
    /* The trailer is the CRC-32 of the data, then its length, 4 bytes each. */
    file.bytes[file.size - 8] ^= 0x01;
    char expected[256];
    snprintf(expected, sizeof expected,
             NAME ": corrupt gzip data at byte offset %zu: incorrect data check", file.size - 4);
    assert_parse_fails(IDX_LABELS, &file, expected);

    file.bytes[file.size - 8] ^= 0x01;
    file.bytes[file.size - 4] ^= 0x01;
    snprintf(expected, sizeof expected,
             NAME ": corrupt gzip data at byte offset %zu: incorrect length check", file.size);
    assert_parse_fails(IDX_LABELS, &file, expected);
}
END_TEST

START_TEST(gzip_truncated_stream_is_rejected)
{
    byte_buffer labels = label_file(3);
    byte_buffer file = gzip_member(&labels);
    for (size_t cut = 1; cut < file.size - 2; cut++) {
        byte_buffer part = file;
        part.size = file.size - cut;
        char expected[256];
        snprintf(expected, sizeof expected,
                 NAME ": truncated gzip data: the file ends at byte offset %zu, inside a gzip "
                      "member",
                 part.size);
        assert_parse_fails(IDX_LABELS, &part, expected);
    }
}
END_TEST

START_TEST(gzip_trailing_bytes_are_rejected)
{
    byte_buffer labels = label_file(3);
    byte_buffer file = gzip_member(&labels);
    size_t end = file.size;
    append_byte(&file, 0);
    append_byte(&file, 0);
    append_byte(&file, 0);
    char expected[256];
    snprintf(expected, sizeof expected,
             NAME ": 3 unexpected bytes at byte offset %zu, after the end of the gzip data", end);
    assert_parse_fails(IDX_LABELS, &file, expected);

    /* A lone first signature byte is not a gzip member either. */
    file.size = end;
    append_byte(&file, 0x1f);
    snprintf(expected, sizeof expected,
             NAME ": 1 unexpected byte at byte offset %zu, after the end of the gzip data", end);
    assert_parse_fails(IDX_LABELS, &file, expected);
}
END_TEST

START_TEST(gzip_trailing_decompressed_data_is_rejected)
{
    byte_buffer labels = label_file(3);
    append_byte(&labels, 0);
    byte_buffer file = gzip_member(&labels);
    assert_parse_fails(IDX_LABELS, &file,
                       NAME ": unexpected data at byte offset 11 of the decompressed data, after "
                            "the 3 labels the header declares");
}
END_TEST

START_TEST(gzip_decompression_stops_after_declared_size)
{
    /* One label declared, then 4000 zero bytes that compress to a few
     * dozen: decompression stops at byte 10, one past the declared end. */
    byte_buffer labels = label_file(1);
    while (labels.size < 4009) {
        append_byte(&labels, 0);
    }
    byte_buffer file = gzip_member(&labels);
    ck_assert_uint_lt(file.size, 100);
    assert_parse_fails(IDX_LABELS, &file,
                       NAME ": unexpected data at byte offset 9 of the decompressed data, after "
                            "the 1 label the header declares");
}
END_TEST

START_TEST(gzip_malformed_contents_are_rejected)
{
    byte_buffer images = image_file(3, 2, 2);
    images.size -= 7;
    byte_buffer file = gzip_member(&images);
    assert_parse_fails(IDX_IMAGES, &file,
                       NAME ": truncated: the header declares 3 images of 2x2 pixels (12 bytes), "
                            "but the decompressed data ends after 5 of them, at byte offset 21");

    byte_buffer empty = {.size = 0};
    file = gzip_member(&empty);
    assert_parse_fails(IDX_IMAGES, &file,
                       NAME ": the decompressed data is empty; expected an IDX image file");

    byte_buffer zero_rows = image_file(1, 1, 1);
    zero_rows.bytes[11] = 0;
    file = gzip_member(&zero_rows);
    assert_parse_fails(IDX_IMAGES, &file,
                       NAME ": invalid header: the row count at byte offset 8 of the decompressed "
                            "data is 0");
}
END_TEST

START_TEST(gzip_huge_claim_is_truncated)
{
    /* As for a plain file, a claim of about 2.8e14 bytes costs no buffer
     * of that size, whose allocation would fail: the buffer grows only
     * with the 7 data bytes that arrive. */
    byte_buffer images = {.size = 0};
    append_u32(&images, 0x00000803);
    append_u32(&images, UINT32_MAX);
    append_u32(&images, 65535);
    append_u32(&images, 1);
    for (int i = 0; i < 7; i++) {
        append_byte(&images, 1);
    }
    byte_buffer file = gzip_member(&images);
    if (sizeof(size_t) < 8) {
        assert_parse_fails(IDX_IMAGES, &file,
                           NAME ": invalid header: 4294967295 images of 65535x1 pixels do not fit "
                                "in memory");
    } else {
        assert_parse_fails(IDX_IMAGES, &file,
                           NAME ": truncated: the header declares 4294967295 images of 65535x1 "
                                "pixels (281470681677825 bytes), but the decompressed data ends "
                                "after 7 of them, at byte offset 23");
    }
}
END_TEST

START_TEST(gzip_label_offsets_count_decompressed_bytes)
{
    byte_buffer images = image_file(4, 1, 1);
    byte_buffer labels = label_file(4);
    labels.bytes[8 + 3] = 12;
    byte_buffer labels_gz = gzip_member(&labels);
    assert_load_fails("images", &images, "labels.gz", &labels_gz,
                      "labels.gz: invalid label 12 for sample 3 at byte offset 11 of the "
                      "decompressed data; labels must be below 10");
}
END_TEST
#else
START_TEST(gzip_file_needs_zlib)
{
    byte_buffer file = {.bytes = {0x1f, 0x8b, 8, 0}, .size = 4};
    assert_parse_fails(IDX_IMAGES, &file,
                       NAME ": the file is gzip-compressed, but this program was built without "
                            "zlib; decompress it with gunzip or rebuild with zlib");
}
END_TEST
#endif

static Suite *idx_suite(void)
{
    Suite *suite = suite_create("idx");

    TCase *valid = add_test_case(suite, "valid");
    tcase_add_checked_fixture(valid, make_temp_dir, remove_temp_dir);
    tcase_add_test(valid, plain_files_round_trip);
    tcase_add_test(valid, parse_from_memory_round_trips);
    tcase_add_test(valid, dataset_parse_from_memory_round_trips);

    TCase *malformed = add_test_case(suite, "malformed");
    tcase_add_checked_fixture(malformed, make_temp_dir, remove_temp_dir);
    tcase_add_test(malformed, empty_file_is_rejected);
    tcase_add_test(malformed, short_magic_number_is_rejected);
    tcase_add_test(malformed, magic_without_zero_bytes_is_rejected);
    tcase_add_test(malformed, other_element_types_are_rejected);
    tcase_add_test(malformed, wrong_dimension_count_is_rejected);
    tcase_add_test(malformed, truncated_header_is_rejected);
    tcase_add_test(malformed, zero_dimension_is_rejected);
    tcase_add_test(malformed, overflowing_sizes_are_rejected);
    tcase_add_test(malformed, huge_claim_in_small_file_is_truncated);
    tcase_add_test(malformed, truncated_data_is_rejected);
    tcase_add_test(malformed, trailing_bytes_are_rejected);
    tcase_add_test(malformed, label_out_of_range_is_rejected);
    tcase_add_test(malformed, count_mismatch_is_rejected);
    tcase_add_test(malformed, file_errors_name_the_path);
    tcase_add_test(malformed, missing_file_is_reported);
    tcase_add_test(malformed, missing_directory_is_reported);

    TCase *pipes = add_test_case(suite, "pipes");
    tcase_set_timeout(pipes, PIPE_TEST_TIMEOUT_SECONDS);
    tcase_add_checked_fixture(pipes, make_temp_dir, remove_temp_dir);
    tcase_add_test(pipes, fifo_without_writer_reads_as_empty);
    tcase_add_test(pipes, fifo_is_read_in_full);
    tcase_add_test(pipes, fifo_reading_stops_after_declared_size);
    tcase_add_test(pipes, fifo_bad_magic_rejected_before_end);
    tcase_add_test(pipes, fifo_huge_claim_without_data_is_truncated);
    tcase_add_test(pipes, device_and_directory_are_rejected);

    TCase *gzip = add_test_case(suite, "gzip");
    tcase_add_checked_fixture(gzip, make_temp_dir, remove_temp_dir);
#ifdef HAVE_ZLIB
    tcase_add_test(gzip, gzip_files_round_trip);
    tcase_add_test(gzip, gzip_members_concatenate);
    tcase_add_test(gzip, gzip_bad_header_is_rejected);
    tcase_add_test(gzip, gzip_bad_checksum_is_rejected);
    tcase_add_test(gzip, gzip_truncated_stream_is_rejected);
    tcase_add_test(gzip, gzip_trailing_bytes_are_rejected);
    tcase_add_test(gzip, gzip_trailing_decompressed_data_is_rejected);
    tcase_add_test(gzip, gzip_decompression_stops_after_declared_size);
    tcase_add_test(gzip, gzip_malformed_contents_are_rejected);
    tcase_add_test(gzip, gzip_huge_claim_is_truncated);
    tcase_add_test(gzip, gzip_label_offsets_count_decompressed_bytes);
#else
    tcase_add_test(gzip, gzip_file_needs_zlib);
#endif

    return suite;
}

int main(void)
{
    return run_suite(idx_suite());
}
