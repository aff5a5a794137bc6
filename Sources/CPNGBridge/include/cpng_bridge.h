// PNG decode/encode through libpng with every libpng error caught by setjmp inside C, so that
// no longjmp ever crosses a Swift frame. Swift calls only these functions.
#ifndef CPNG_BRIDGE_H
#define CPNG_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// One tEXt/zTXt/iTXt chunk. Strings are NUL-terminated UTF-8 (tEXt text is Latin-1 as stored).
typedef struct {
  char *key;
  char *text;
  size_t text_length;
  int international;  // 1 for iTXt
} cf_png_text;

/// A decoded image: palette and low-bit gray expanded, tRNS turned into an alpha channel,
/// 16-bit samples in host byte order. `pixels` holds height rows of width*channels samples.
typedef struct {
  uint32_t width;
  uint32_t height;
  int channels;   // 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA
  int bit_depth;  // 8 or 16
  uint8_t *pixels;
  size_t pixel_bytes;
  cf_png_text *texts;
  size_t text_count;
  /// In: an optional buffer of `into_capacity` bytes for the pixels (the caller's sample array). When the
  /// image fits, rows are decoded straight into it, `pixels` stays NULL and `pixels_in_caller` is 1.
  uint8_t *into;
  size_t into_capacity;
  int pixels_in_caller;
} cf_png_image;

/// Decodes `size` bytes. Refuses images whose decoded size exceeds `max_bytes` before allocating.
/// Returns 0 on success; otherwise writes a message into `error` (at most `error_size` bytes).
int cf_png_decode(const uint8_t *data, size_t size, size_t max_bytes, cf_png_image *out, char *error,
                  size_t error_size);

/// Frees what cf_png_decode allocated (safe on a zeroed struct).
void cf_png_image_free(cf_png_image *image);

/// Encodes 8-bit RGB (channels 3) or RGBA (channels 4) rows plus text chunks into a new buffer
/// (`*out`, `*out_size`; free it with cf_png_buffer_free). Returns 0 on success.
int cf_png_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int channels, const cf_png_text *texts,
                  size_t text_count, uint8_t **out, size_t *out_size, char *error, size_t error_size);

void cf_png_buffer_free(uint8_t *buffer);

#ifdef __cplusplus
}
#endif

#endif
