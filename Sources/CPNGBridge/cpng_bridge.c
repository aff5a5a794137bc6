// libpng wrappers: libpng signals errors with longjmp, so every libpng call runs below a setjmp in
// this file and failures come back to Swift as a return code plus a message.
#include "cpng_bridge.h"

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  char *message;
  size_t capacity;
} error_sink;

static void set_message(error_sink *sink, const char *message) {
  if (sink->capacity == 0) return;
  snprintf(sink->message, sink->capacity, "%s", message);
}

static void on_error(png_structp png, png_const_charp message) {
  set_message((error_sink *)png_get_error_ptr(png), message);
  png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp message) {
  (void)png;
  (void)message;
}

typedef struct {
  const uint8_t *data;
  size_t size;
  size_t position;
} memory_reader;

static void read_from_memory(png_structp png, png_bytep out, size_t count) {
  memory_reader *reader = (memory_reader *)png_get_io_ptr(png);
  if (count > reader->size - reader->position) png_error(png, "file ends early (truncated PNG)");
  memcpy(out, reader->data + reader->position, count);
  reader->position += count;
}

static int host_is_little_endian(void) {
  uint16_t probe = 1;
  return *(uint8_t *)&probe == 1;
}

static char *copy_string(const char *text, size_t length) {
  char *copy = (char *)malloc(length + 1);
  if (!copy) return NULL;
  if (length) memcpy(copy, text, length);
  copy[length] = 0;
  return copy;
}

void cf_png_image_free(cf_png_image *image) {
  if (!image) return;
  free(image->pixels);
  for (size_t i = 0; i < image->text_count; i++) {
    free(image->texts[i].key);
    free(image->texts[i].text);
  }
  free(image->texts);
  memset(image, 0, sizeof(*image));
}

static uint32_t be32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

// Walks the chunk list before libpng sees it: libpng allocates a chunk's claimed length before
// reading it, so a lying length would reserve gigabytes. Every chunk must fit in the file.
static int check_chunks(const uint8_t *data, size_t size, char *message, size_t capacity) {
  size_t at = 8;
  while (1) {
    if (size - at < 12) {
      snprintf(message, capacity, "file ends early at byte %zu, before IEND (truncated PNG)", at);
      return 1;
    }
    uint32_t length = be32(data + at);
    if (length > 0x7fffffffu || (size_t)length > size - at - 12) {
      char type[5] = {0};
      for (int i = 0; i < 4; i++) {
        uint8_t c = data[at + 4 + i];
        type[i] = (c >= 32 && c < 127) ? (char)c : '?';
      }
      snprintf(message, capacity, "chunk '%s' at byte %zu claims %u bytes but %zu remain (truncated PNG)", type, at,
               length, size - at - 12);
      return 1;
    }
    if (memcmp(data + at + 4, "IEND", 4) == 0) return 0;
    at += 12 + (size_t)length;
  }
}

int cf_png_decode(const uint8_t *data, size_t size, size_t max_bytes, cf_png_image *out, char *error,
                  size_t error_size) {
  memset(out, 0, sizeof(*out));
  error_sink sink = {error, error_size};
  if (error_size) error[0] = 0;
  if (size < 8 || png_sig_cmp(data, 0, 8) != 0) {
    set_message(&sink, "not a PNG file (bad signature)");
    return 1;
  }
  if (check_chunks(data, size, error, error_size)) return 1;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &sink, on_error, on_warning);
  if (!png) {
    set_message(&sink, "libpng could not start");
    return 1;
  }
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_read_struct(&png, NULL, NULL);
    set_message(&sink, "libpng could not start");
    return 1;
  }
  memory_reader reader = {data, size, 0};
  // Written after setjmp and read after a longjmp: volatile keeps them out of registers.
  uint8_t *volatile pixels = NULL;
  volatile int pixels_owned = 0;
  png_bytep *volatile rows = NULL;
  if (setjmp(png_jmpbuf(png))) {
    if (pixels_owned) free(pixels);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    if (error_size && error[0] == 0) set_message(&sink, "libpng failed");
    return 1;
  }
  png_set_read_fn(png, &reader, read_from_memory);
  png_set_user_limits(png, 1u << 20, 1u << 20);
  png_set_chunk_cache_max(png, 1000);
  png_set_chunk_malloc_max(png, 16u << 20);
  png_read_info(png, info);

  png_uint_32 width = png_get_image_width(png, info);
  png_uint_32 height = png_get_image_height(png, info);
  int color_type = png_get_color_type(png, info);
  int bit_depth = png_get_bit_depth(png, info);
  size_t stored_row_bytes = png_get_rowbytes(png, info);
  // Deflate expands at most ~1032:1; a header claiming far more pixels than the file can hold is
  // refused before anything large is allocated.
  double stored_bytes = ((double)stored_row_bytes + 1.0) * (double)height;
  if (stored_bytes > 1100.0 * (double)size + 65536.0) {
    char message[160];
    snprintf(message, sizeof(message), "header claims %ux%u pixels but the file holds only %zu bytes",
             (unsigned)width, (unsigned)height, size);
    png_error(png, message);
  }

  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  if (bit_depth == 16 && host_is_little_endian()) png_set_swap(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);

  int channels = png_get_channels(png, info);
  int out_depth = png_get_bit_depth(png, info);
  size_t row_bytes = png_get_rowbytes(png, info);
  if ((out_depth != 8 && out_depth != 16) || channels < 1 || channels > 4 ||
      row_bytes != (size_t)width * (size_t)channels * (size_t)(out_depth / 8)) {
    png_error(png, "unsupported pixel layout after expansion");
  }
  if (height != 0 && row_bytes > max_bytes / height) {
    char message[160];
    snprintf(message, sizeof(message), "image %ux%u needs more than the %zu-byte limit", (unsigned)width,
             (unsigned)height, max_bytes);
    png_error(png, message);
  }
  size_t total = row_bytes * height;
  int use_caller = out->into != NULL && total <= out->into_capacity;
  pixels = use_caller ? out->into : (uint8_t *)malloc(total ? total : 1);
  pixels_owned = !use_caller;
  rows = (png_bytep *)malloc(sizeof(png_bytep) * (height ? height : 1));
  if (!pixels || !rows) png_error(png, "out of memory");
  for (png_uint_32 y = 0; y < height; y++) rows[y] = pixels + (size_t)y * row_bytes;
  png_read_image(png, rows);
  png_read_end(png, info);

  png_textp text = NULL;
  int text_count = 0;
  png_get_text(png, info, &text, &text_count);
  cf_png_text *texts = NULL;
  if (text_count > 0) {
    texts = (cf_png_text *)calloc((size_t)text_count, sizeof(cf_png_text));
    if (!texts) png_error(png, "out of memory");
    for (int i = 0; i < text_count; i++) {
      int international = text[i].compression >= PNG_ITXT_COMPRESSION_NONE;
      size_t length = international ? text[i].itxt_length : text[i].text_length;
      const char *source = text[i].text ? text[i].text : "";
      if (!text[i].text) length = 0;
      texts[i].key = copy_string(text[i].key ? text[i].key : "", text[i].key ? strlen(text[i].key) : 0);
      texts[i].text = copy_string(source, length);
      texts[i].text_length = length;
      texts[i].international = international;
      if (!texts[i].key || !texts[i].text) {
        for (int j = 0; j <= i; j++) {
          free(texts[j].key);
          free(texts[j].text);
        }
        free(texts);
        png_error(png, "out of memory");
      }
    }
  }
  free(rows);
  rows = NULL;
  png_destroy_read_struct(&png, &info, NULL);
  out->width = width;
  out->height = height;
  out->channels = channels;
  out->bit_depth = out_depth;
  out->pixels = use_caller ? NULL : pixels;
  out->pixels_in_caller = use_caller;
  out->pixel_bytes = total;
  out->texts = texts;
  out->text_count = (size_t)text_count;
  return 0;
}

typedef struct {
  uint8_t *buffer;
  size_t size;
  size_t capacity;
} memory_writer;

static void write_to_memory(png_structp png, png_bytep data, size_t count) {
  memory_writer *writer = (memory_writer *)png_get_io_ptr(png);
  if (count > writer->capacity - writer->size) {
    size_t capacity = writer->capacity ? writer->capacity : 4096;
    while (capacity - writer->size < count) {
      if (capacity > SIZE_MAX / 2) png_error(png, "PNG too large");
      capacity *= 2;
    }
    uint8_t *grown = (uint8_t *)realloc(writer->buffer, capacity);
    if (!grown) png_error(png, "out of memory");
    writer->buffer = grown;
    writer->capacity = capacity;
  }
  memcpy(writer->buffer + writer->size, data, count);
  writer->size += count;
}

static void flush_memory(png_structp png) { (void)png; }

void cf_png_buffer_free(uint8_t *buffer) { free(buffer); }

int cf_png_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int channels, const cf_png_text *texts,
                  size_t text_count, uint8_t **out, size_t *out_size, char *error, size_t error_size) {
  error_sink sink = {error, error_size};
  if (error_size) error[0] = 0;
  *out = NULL;
  *out_size = 0;
  if (channels != 3 && channels != 4) {
    set_message(&sink, "only 8-bit RGB and RGBA can be written");
    return 1;
  }
  if (width == 0 || height == 0 || width > PNG_UINT_31_MAX || height > PNG_UINT_31_MAX) {
    set_message(&sink, "image size out of range");
    return 1;
  }
  // Heap state: its address is fixed before setjmp, so nothing here depends on register contents.
  memory_writer *writer = (memory_writer *)calloc(1, sizeof(memory_writer));
  png_text *chunks = (png_text *)calloc(text_count ? text_count : 1, sizeof(png_text));
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &sink, on_error, on_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!writer || !chunks || !png || !info) {
    free(writer);
    free(chunks);
    if (png) png_destroy_write_struct(&png, info ? &info : NULL);
    set_message(&sink, "out of memory");
    return 1;
  }
  if (setjmp(png_jmpbuf(png))) {
    free(writer->buffer);
    free(writer);
    free(chunks);
    png_destroy_write_struct(&png, &info);
    if (error_size && error[0] == 0) set_message(&sink, "libpng failed");
    return 1;
  }
  png_set_write_fn(png, writer, write_to_memory, flush_memory);
  png_set_IHDR(png, info, width, height, 8, channels == 4 ? PNG_COLOR_TYPE_RGB_ALPHA : PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  for (size_t i = 0; i < text_count; i++) {
    chunks[i].key = texts[i].key;
    chunks[i].text = texts[i].text;
    if (texts[i].international) {
      chunks[i].compression = PNG_ITXT_COMPRESSION_NONE;
      chunks[i].itxt_length = texts[i].text_length;
      chunks[i].lang = (png_charp) "";
      chunks[i].lang_key = (png_charp) "";
    } else {
      chunks[i].compression = PNG_TEXT_COMPRESSION_NONE;
      chunks[i].text_length = texts[i].text_length;
    }
  }
  if (text_count) png_set_text(png, info, chunks, (int)text_count);
  png_write_info(png, info);
  size_t row_bytes = (size_t)width * (size_t)channels;
  for (uint32_t y = 0; y < height; y++) png_write_row(png, (png_const_bytep)(pixels + (size_t)y * row_bytes));
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  *out = writer->buffer;
  *out_size = writer->size;
  free(writer);
  free(chunks);
  return 0;
}
