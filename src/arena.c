/* The tape's memory: a bump allocator over a list of chunks.
 *
 * Blocks are never freed one by one. A reset makes the whole arena free
 * again and keeps every chunk. Allocation fills the chunks in list order,
 * so a step that repeats the previous step's requests lands in the same
 * chunks at the same offsets and takes nothing from the heap. */
#include <stdint.h>
#include <stdlib.h>

#include "internal.h"

/* Capacity of the first chunk, in bytes. Later chunks at least double the
 * arena's capacity, so a step needs O(log size) chunks the first time. */
#define FIRST_CHUNK_CAPACITY ((size_t)64 * 1024)

struct tt_arena_chunk {
    tt_arena_chunk *next;
    size_t capacity; /* usable bytes after the aligned header */
    unsigned char *base;
};

static size_t align_up(size_t size)
{
    return (size + (TT_ARENA_ALIGN - 1)) & ~(size_t)(TT_ARENA_ALIGN - 1);
}

static tt_arena_chunk *chunk_new(size_t capacity)
{
    if (capacity > SIZE_MAX - 2 * TT_ARENA_ALIGN - sizeof(tt_arena_chunk))
        return NULL;
    /* The header sits at the start of the allocation; the usable bytes start
     * at the next aligned address after it. */
    unsigned char *raw = malloc(sizeof(tt_arena_chunk) + TT_ARENA_ALIGN + capacity);
    if (raw == NULL)
        return NULL;
    tt_arena_chunk *chunk = (tt_arena_chunk *)raw;
    uintptr_t start = (uintptr_t)(raw + sizeof(tt_arena_chunk));
    uintptr_t aligned = (start + (TT_ARENA_ALIGN - 1)) & ~(uintptr_t)(TT_ARENA_ALIGN - 1);
    chunk->next = NULL;
    chunk->capacity = capacity;
    chunk->base = (unsigned char *)aligned;
    return chunk;
}

static void chunks_free(tt_arena_chunk *chunk)
{
    while (chunk != NULL) {
        tt_arena_chunk *next = chunk->next;
        free(chunk);
        chunk = next;
    }
}

void tt_arena_init(tt_arena *arena)
{
    arena->first = NULL;
    arena->current = NULL;
    arena->used_in_current = 0;
}

void tt_arena_release(tt_arena *arena)
{
    chunks_free(arena->first);
    tt_arena_init(arena);
}

void tt_arena_reset(tt_arena *arena)
{
    arena->current = arena->first;
    arena->used_in_current = 0;
}

void *tt_arena_alloc(tt_arena *arena, size_t size)
{
    if (size > SIZE_MAX - TT_ARENA_ALIGN)
        return NULL;
    size = align_up(size == 0 ? 1 : size);

    /* Use the current chunk, then any chunk kept after it, then a new one. */
    while (arena->current != NULL) {
        if (arena->current->capacity - arena->used_in_current >= size) {
            void *block = arena->current->base + arena->used_in_current;
            arena->used_in_current += size;
            return block;
        }
        if (arena->current->next == NULL)
            break;
        arena->current = arena->current->next;
        arena->used_in_current = 0;
    }

    size_t total = 0;
    for (tt_arena_chunk *chunk = arena->first; chunk != NULL; chunk = chunk->next)
        total += chunk->capacity;
    size_t capacity = total > FIRST_CHUNK_CAPACITY ? total : FIRST_CHUNK_CAPACITY;
    if (capacity < size)
        capacity = size;
    tt_arena_chunk *chunk = chunk_new(capacity);
    if (chunk == NULL)
        return NULL;

    if (arena->current == NULL)
        arena->first = chunk;
    else
        arena->current->next = chunk;
    arena->current = chunk;
    arena->used_in_current = size;
    return chunk->base;
}

tt_arena_mark tt_arena_get_mark(const tt_arena *arena)
{
    tt_arena_mark mark = {arena->current, arena->used_in_current};
    return mark;
}

void tt_arena_rewind(tt_arena *arena, tt_arena_mark mark)
{
    /* Chunks after the mark stay in the list and are reused later. */
    if (mark.chunk == NULL) {
        arena->current = arena->first;
        arena->used_in_current = 0;
        return;
    }
    arena->current = mark.chunk;
    arena->used_in_current = mark.used;
}
