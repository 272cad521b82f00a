/* PocketClip's PhotoKit helper: plain C functions over the Photos library, for Python's ctypes.
 *
 * pyobjus cannot pass Objective-C blocks, and PhotoKit answers through blocks (authorization,
 * image requests, change enumeration). These functions wait for those answers and return plain
 * values, so the app's Python (app/platform/photokit.py) calls them from its worker threads through
 * ctypes.CDLL(None): kivy-ios links every recipe library into the app binary with -all_load and no
 * dead-code stripping, so the symbols are there. Never call a blocking function on the main thread.
 *
 * Strings are UTF-8. Dates are seconds since 1970. Every function is thread-safe. */
#ifndef POCKETCLIP_PHOTOS_H
#define POCKETCLIP_PHOTOS_H

#include <stdint.h>

#define PC_OK 0
#define PC_MISSING 1      /* no such asset (deleted, or no longer among the photos allowed) */
#define PC_FAILED 2       /* the image could not be made (iCloud-only with no network, unsupported) */
#define PC_TOO_SMALL 3    /* the caller's buffer is too small: *width and *height say what is needed */
#define PC_EXPIRED (-1)   /* the change token is too old or from another library: list everything again */
#define PC_NO_TOKENS (-2) /* persistent change tokens need iOS 16 */

/* PHAuthorizationStatus for read access: 0 not determined, 1 restricted, 2 denied, 3 authorized,
 * 4 limited (the user chose "Select Photos"). */
int pc_photos_authorization(void);

/* Asks the user (the system dialog) if not yet determined; blocks until answered; the new status. */
int pc_photos_request_authorization(void);

/* Fetches the image assets the app may read (limited access: only the selected ones), oldest first,
 * and keeps the result as the current snapshot. Returns how many, or -1 without access. */
int64_t pc_photos_fetch(void);

/* Asset `index` of the snapshot: its local identifier (NUL-terminated, at most `id_capacity` bytes
 * with the NUL) and its modification date (creation date when it has none). PC_OK or PC_MISSING. */
int pc_photos_asset(int64_t index, char *id_out, int id_capacity, double *modified_out);

/* The asset's modification date by local identifier. PC_OK or PC_MISSING. */
int pc_photos_modified(const char *local_id, double *modified_out);

/* The asset's image with its shorter side at least `side` pixels (PHImageManager, synchronous,
 * PHImageContentModeAspectFill, high quality, network access allowed, orientation applied), written
 * into `rgb` as 8-bit RGB rows of *width x *height pixels (`capacity` bytes available). */
int pc_photos_image(const char *local_id, int side, uint8_t *rgb, int64_t capacity, int *width, int *height);

/* The library's current change token (PHPersistentChangeToken, archived): its length, or
 * PC_NO_TOKENS, or -(length needed) - 16 when `capacity` is too small. */
int64_t pc_photos_change_token(uint8_t *out, int64_t capacity);

/* What changed since `token`: lines "u <local id>\n" (inserted or updated) and "d <local id>\n"
 * (deleted) into `out`; returns their length, 0 for no change, PC_EXPIRED, PC_NO_TOKENS, or
 * -(length needed) - 16 when `capacity` is too small. */
int64_t pc_photos_changes_since(const uint8_t *token, int64_t token_length, char *out, int64_t capacity);

#endif
