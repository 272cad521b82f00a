// PocketClip's PhotoKit helper (see pocketclip_photos.h). Built by ios/recipes/pocketclip (kivy-ios).
// Not compiled on the development machine (no Xcode): written against Apple's documented PhotoKit API.
#import <Foundation/Foundation.h>
#import <Photos/Photos.h>
#import <UIKit/UIKit.h>
#include <string.h>

#include "pocketclip_photos.h"

#define PC_EXPORT __attribute__((visibility("default"), used))

static PHFetchResult<PHAsset *> *snapshot;
static NSObject *snapshot_lock;

__attribute__((constructor)) static void pc_init(void) { snapshot_lock = [NSObject new]; }

PC_EXPORT int pc_photos_authorization(void) {
  return (int)[PHPhotoLibrary authorizationStatusForAccessLevel:PHAccessLevelReadWrite];
}

PC_EXPORT int pc_photos_request_authorization(void) {
  dispatch_semaphore_t done = dispatch_semaphore_create(0);
  __block PHAuthorizationStatus answer = PHAuthorizationStatusNotDetermined;
  [PHPhotoLibrary requestAuthorizationForAccessLevel:PHAccessLevelReadWrite
                                             handler:^(PHAuthorizationStatus status) {
                                               answer = status;
                                               dispatch_semaphore_signal(done);
                                             }];
  dispatch_semaphore_wait(done, DISPATCH_TIME_FOREVER);
  return (int)answer;
}

static double modified_of(PHAsset *asset) {
  NSDate *date = asset.modificationDate ?: asset.creationDate;
  return date ? date.timeIntervalSince1970 : 0.0;
}

PC_EXPORT int64_t pc_photos_fetch(void) {
  @autoreleasepool {
    PHAuthorizationStatus status = [PHPhotoLibrary authorizationStatusForAccessLevel:PHAccessLevelReadWrite];
    if (status != PHAuthorizationStatusAuthorized && status != PHAuthorizationStatusLimited) return -1;
    PHFetchOptions *options = [PHFetchOptions new];
    options.sortDescriptors = @[ [NSSortDescriptor sortDescriptorWithKey:@"creationDate" ascending:YES] ];
    options.includeHiddenAssets = NO;
    PHFetchResult<PHAsset *> *result = [PHAsset fetchAssetsWithMediaType:PHAssetMediaTypeImage options:options];
    @synchronized(snapshot_lock) {
      snapshot = result;
    }
    return (int64_t)result.count;
  }
}

PC_EXPORT int pc_photos_asset(int64_t index, char *id_out, int id_capacity, double *modified_out) {
  @autoreleasepool {
    PHAsset *asset = nil;
    @synchronized(snapshot_lock) {
      if (snapshot && index >= 0 && index < (int64_t)snapshot.count) asset = [snapshot objectAtIndex:(NSUInteger)index];
    }
    if (!asset) return PC_MISSING;
    const char *text = asset.localIdentifier.UTF8String;
    if (!text || (int)strlen(text) + 1 > id_capacity) return PC_MISSING;
    memcpy(id_out, text, strlen(text) + 1);
    *modified_out = modified_of(asset);
    return PC_OK;
  }
}

static PHAsset *asset_with_id(const char *local_id) {
  NSString *identifier = [NSString stringWithUTF8String:local_id];
  if (!identifier) return nil;
  return [PHAsset fetchAssetsWithLocalIdentifiers:@[ identifier ] options:nil].firstObject;
}

PC_EXPORT int pc_photos_modified(const char *local_id, double *modified_out) {
  @autoreleasepool {
    PHAsset *asset = asset_with_id(local_id);
    if (!asset) return PC_MISSING;
    *modified_out = modified_of(asset);
    return PC_OK;
  }
}

PC_EXPORT int pc_photos_image(const char *local_id, int side, uint8_t *rgb, int64_t capacity, int *width,
                              int *height) {
  @autoreleasepool {
    PHAsset *asset = asset_with_id(local_id);
    if (!asset) return PC_MISSING;
    PHImageRequestOptions *options = [PHImageRequestOptions new];
    options.synchronous = YES;  // the caller is a worker thread: wait here, one answer
    options.deliveryMode = PHImageRequestOptionsDeliveryModeHighQualityFormat;
    options.resizeMode = PHImageRequestOptionsResizeModeFast;
    options.networkAccessAllowed = YES;  // iCloud Photos: "optimise storage" keeps only small local copies
    __block UIImage *image = nil;
    [[PHImageManager defaultManager] requestImageForAsset:asset
                                               targetSize:CGSizeMake(side, side)
                                              contentMode:PHImageContentModeAspectFill
                                                  options:options
                                            resultHandler:^(UIImage *result, NSDictionary *info) {
                                              image = result;
                                            }];
    if (!image.CGImage) return PC_FAILED;
    // draw into RGBA at the pixel size (this also applies the image's orientation), then drop alpha
    CGSize points = image.size;
    int w = (int)lround(points.width * image.scale), h = (int)lround(points.height * image.scale);
    if (w < 1 || h < 1) return PC_FAILED;
    *width = w;
    *height = h;
    if ((int64_t)w * h * 3 > capacity) return PC_TOO_SMALL;
    uint8_t *rgba = malloc((size_t)w * h * 4);
    if (!rgba) return PC_FAILED;
    CGColorSpaceRef space = CGColorSpaceCreateDeviceRGB();
    CGContextRef context = CGBitmapContextCreate(rgba, w, h, 8, (size_t)w * 4, space,
                                                 kCGImageAlphaNoneSkipLast | kCGBitmapByteOrder32Big);
    CGColorSpaceRelease(space);
    if (!context) {
      free(rgba);
      return PC_FAILED;
    }
    UIGraphicsPushContext(context);
    CGContextTranslateCTM(context, 0, h);  // UIKit draws top-down
    CGContextScaleCTM(context, (CGFloat)w / points.width, -(CGFloat)h / points.height);
    [image drawInRect:CGRectMake(0, 0, points.width, points.height)];
    UIGraphicsPopContext();
    CGContextRelease(context);
    for (int64_t i = 0, n = (int64_t)w * h; i < n; i++) memcpy(rgb + 3 * i, rgba + 4 * i, 3);
    free(rgba);
    return PC_OK;
  }
}

static int64_t copy_out(NSData *data, void *out, int64_t capacity) {
  if ((int64_t)data.length > capacity) return -(int64_t)data.length - 16;
  memcpy(out, data.bytes, data.length);
  return (int64_t)data.length;
}

PC_EXPORT int64_t pc_photos_change_token(uint8_t *out, int64_t capacity) {
  if (@available(iOS 16, *)) {
    @autoreleasepool {
      PHPersistentChangeToken *token = [PHPhotoLibrary sharedPhotoLibrary].currentChangeToken;
      NSData *data = [NSKeyedArchiver archivedDataWithRootObject:token requiringSecureCoding:YES error:nil];
      return data ? copy_out(data, out, capacity) : PC_NO_TOKENS;
    }
  }
  return PC_NO_TOKENS;
}

PC_EXPORT int64_t pc_photos_changes_since(const uint8_t *token, int64_t token_length, char *out, int64_t capacity) {
  if (@available(iOS 16, *)) {
    @autoreleasepool {
      NSData *data = [NSData dataWithBytes:token length:(NSUInteger)token_length];
      PHPersistentChangeToken *since = [NSKeyedUnarchiver unarchivedObjectOfClass:[PHPersistentChangeToken class]
                                                                         fromData:data
                                                                            error:nil];
      if (!since) return PC_EXPIRED;
      NSError *error = nil;
      PHPersistentChangeFetchResult *changes =
          [[PHPhotoLibrary sharedPhotoLibrary] fetchPersistentChangesSinceToken:since error:&error];
      if (!changes) return PC_EXPIRED;  // PHPhotosErrorPersistentChangeTokenExpired and the like
      NSMutableString *lines = [NSMutableString string];
      __block BOOL failed = NO;
      [changes enumerateChangesWithBlock:^(PHPersistentChange *change, BOOL *stop) {
        NSError *detailsError = nil;
        PHPersistentObjectChangeDetails *details =
            [change changeDetailsForObjectType:PHObjectTypeAsset error:&detailsError];
        if (!details) {
          failed = YES;
          *stop = YES;
          return;
        }
        for (NSString *identifier in details.insertedLocalIdentifiers) [lines appendFormat:@"u %@\n", identifier];
        for (NSString *identifier in details.updatedLocalIdentifiers) [lines appendFormat:@"u %@\n", identifier];
        for (NSString *identifier in details.deletedLocalIdentifiers) [lines appendFormat:@"d %@\n", identifier];
      }];
      if (failed) return PC_EXPIRED;
      return copy_out([lines dataUsingEncoding:NSUTF8StringEncoding], out, capacity);
    }
  }
  return PC_NO_TOKENS;
}
