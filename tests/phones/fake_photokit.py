"""A pure-Python stand-in of the PhotoKit helper's C API (ios/recipes/pocketclip/src/pocketclip_photos.h).

Same function names, same ctypes argument kinds as ``app.platform.photokit.SIGNATURES`` (buffers and
pointers written in place, int return codes), over a library held in Python: local id -> (RGB image,
modification date). ``changes`` keeps a log for change tokens; ``authorization`` is the user's answer.
Importable from the shipped-files run (stdlib + Pillow only).
"""
from __future__ import annotations

import ctypes

PC_OK, PC_MISSING, PC_FAILED, PC_TOO_SMALL, PC_EXPIRED = 0, 1, 2, 3, -1


class FakePhotoKit:
    def __init__(self, photos: dict, authorization: int = 3, tokens: bool = True):
        self.photos = dict(photos)  # local id -> (PIL RGB image, modification date in seconds)
        self.authorization = authorization
        self.tokens = tokens
        self.log: list[tuple[str, str]] = []  # ("u" | "d", local id), in order; a token is a position
        self.snapshot: list[str] = []
        self.calls: dict[str, int] = {}

    def _count(self, name):
        self.calls[name] = self.calls.get(name, 0) + 1

    # what PhotoKit's library does, for tests
    def put(self, local_id, image, modified):
        self.photos[local_id] = (image, modified)
        self.log.append(("u", local_id))

    def delete(self, local_id):
        del self.photos[local_id]
        self.log.append(("d", local_id))

    # the C API
    def pc_photos_authorization(self):
        return self.authorization

    def pc_photos_request_authorization(self):
        return self.authorization

    def pc_photos_fetch(self):
        self._count("fetch")
        if self.authorization not in (3, 4):
            return -1
        self.snapshot = list(self.photos)
        return len(self.snapshot)

    def pc_photos_asset(self, index, id_out, id_capacity, modified_out):
        if not 0 <= index < len(self.snapshot) or self.snapshot[index] not in self.photos:
            return PC_MISSING
        raw = self.snapshot[index].encode() + b"\0"
        if len(raw) > id_capacity:
            return PC_MISSING
        ctypes.memmove(id_out, raw, len(raw))
        modified_out._obj.value = self.photos[self.snapshot[index]][1]
        return PC_OK

    def pc_photos_modified(self, local_id, modified_out):
        photo = self.photos.get(local_id.decode())
        if photo is None:
            return PC_MISSING
        modified_out._obj.value = photo[1]
        return PC_OK

    def pc_photos_image(self, local_id, side, rgb, capacity, width, height):
        self._count("image")
        photo = self.photos.get(local_id.decode())
        if photo is None:
            return PC_MISSING
        image = photo[0]
        scale = side / min(image.size)  # aspect fill: the shorter side becomes `side`
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
        width._obj.value, height._obj.value = image.size
        data = image.tobytes()
        if len(data) > capacity:
            return PC_TOO_SMALL
        ctypes.memmove(rgb, data, len(data))
        return PC_OK

    def pc_photos_change_token(self, out, capacity):
        if not self.tokens:
            return -2
        raw = str(len(self.log)).encode()
        if len(raw) > capacity:
            return -len(raw) - 16
        ctypes.memmove(out, raw, len(raw))
        return len(raw)

    def pc_photos_changes_since(self, token, length, out, capacity):
        self._count("changes_since")
        if not self.tokens:
            return -2
        start = int(ctypes.string_at(token, length).decode())
        if start > len(self.log):
            return PC_EXPIRED
        raw = "".join(f"{kind} {local_id}\n" for kind, local_id in self.log[start:]).encode()
        if len(raw) > capacity:
            return -len(raw) - 16
        ctypes.memmove(out, raw, len(raw))
        return len(raw)
