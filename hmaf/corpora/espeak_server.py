"""A tiny process that runs libespeak-ng through ctypes and answers synthesis requests.

Why a separate process, and why one fork per request: libespeak-ng keeps synthesis
state in C ``static`` variables that no API resets (e.g. the pitch-flutter phase in
``wavegen.c`` advances across calls), so the same text synthesised twice in one process
gives different samples and word times. This server initialises the library once and
then answers every request in a freshly forked child, so every utterance starts from the
very same library state: same text + voice -> same bytes, whatever came before and
whatever the calling process does (e.g. aeneas loads the same library in-process).

Run as ``python espeak_server.py`` (by :class:`hmaf.corpora.tts.Engine`); it imports only
the standard library so it starts in milliseconds. Protocol on stdin/stdout: frames of an
8-byte little-endian length followed by a pickle.
Request: ``{"ssml": str, "voice": str}`` (``voice`` like ``"en+f3"``).
Reply: ``{"ok": True, "sample_rate": int, "audio": bytes (int16 LE mono),
"events": [(type, text_position, length, sample, phoneme_name), ...]}`` or
``{"ok": False, "error": str}``.

Event types follow ``espeak_EVENT_TYPE`` in ``speak_lib.h``: 1 word, 2 sentence,
5 end of clause/sentence, 6 message end (phoneme events, 7, are not requested). ``sample`` is the absolute sample
index (at the library's native rate) within the utterance; ``text_position`` is the
1-based character position in the request text.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import pickle
import select
import signal
import struct
import sys

AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_CHARS_UTF8 = 1
ESPEAK_SSML = 0x10
EVENT_PHONEME = 7
POS_CHARACTER = 1
REQUEST_TIMEOUT_S = 120.0
# Audio buffer per callback, in ms (the library sizes its per-buffer event list from it).
BUFFER_MS = 1000
# Phoneme events stay off: with them on, espeak-ng 1.51 silently drops parts of SSML
# text that has <prosody> elements (measured: the start of the text, or everything after
# one word), while the same text without them is spoken in full.
INIT_OPTIONS = 0
LIBRARY_NAMES = ("libespeak-ng.so.1", "libespeak-ng.so", "libespeak-ng.1.dylib", "libespeak-ng.dylib")


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    # Mirrors espeak_EVENT in speak_lib.h field by field.
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


def load_library() -> ctypes.CDLL:
    """Loads libespeak-ng; raises OSError naming the package to install when it is absent."""
    names = list(LIBRARY_NAMES)
    found = ctypes.util.find_library("espeak-ng")
    if found:
        names.insert(0, found)
    errors = []
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError as e:
            errors.append(f"{name}: {e}")
    raise OSError(
        "libespeak-ng not found (install the Debian/Ubuntu package libespeak-ng1, "
        "or espeak-ng on other systems); tried " + "; ".join(errors))


class Synthesizer:
    """The library, initialised in synchronous retrieval mode."""

    def __init__(self) -> None:
        self.lib = load_library()
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.lib.espeak_Synth.restype = ctypes.c_int
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetVoiceByName.restype = ctypes.c_int
        self.lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
        self.lib.espeak_Info.restype = ctypes.c_char_p
        self.sample_rate = self.lib.espeak_Initialize(
            AUDIO_OUTPUT_SYNCHRONOUS, BUFFER_MS, None, INIT_OPTIONS)
        if self.sample_rate <= 0:
            raise RuntimeError("espeak_Initialize failed (espeak-ng-data missing?)")
        data_path = ctypes.c_char_p()
        self.version = self.lib.espeak_Info(ctypes.byref(data_path)).decode()
        self.data_path = (data_path.value or b"").decode()
        self._chunks: list[bytes] = []
        self._events: list[tuple[int, int, int, int, str]] = []
        # Keep a reference: the library calls it long after this line.
        self._callback = _CALLBACK(self._on_audio)
        self.lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav, num_samples, events) -> int:
        if wav and num_samples > 0:
            self._chunks.append(ctypes.string_at(wav, num_samples * 2))
        i = 0
        while events[i].type != 0:  # the list ends with espeakEVENT_LIST_TERMINATED
            e = events[i]
            name = e.id.string.decode("utf-8", "replace") if e.type == EVENT_PHONEME else ""
            self._events.append((e.type, e.text_position, e.length, e.sample, name))
            i += 1
        return 0

    def check_voice(self, voice: str) -> None:
        """espeak_SetVoiceByName silently ignores an unknown variant: check its file."""
        if "+" in voice:
            variant = voice.split("+", 1)[1]
            path = os.path.join(self.data_path, "voices", "!v", variant)
            if not os.path.isfile(path):
                raise ValueError(f"unknown espeak-ng voice variant {variant!r} (no file {path})")

    def synthesize(self, ssml: str, voice: str) -> dict:
        self.check_voice(voice)
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"unknown espeak-ng voice {voice!r}")
        # Some voice effects draw from libc rand(): seed it so they repeat too.
        ctypes.CDLL(None).srand(0)
        text = ssml.encode("utf-8")
        rc = self.lib.espeak_Synth(text, len(text) + 1, 0, POS_CHARACTER, 0,
                                   ESPEAK_CHARS_UTF8 | ESPEAK_SSML, None, None)
        if rc != 0:
            raise RuntimeError(f"espeak_Synth returned error {rc}")
        return {"ok": True, "sample_rate": self.sample_rate, "audio": b"".join(self._chunks),
                "events": self._events}


def _read_exact(fd: int, n: int) -> bytes | None:
    parts, got = [], 0
    while got < n:
        part = os.read(fd, n - got)
        if not part:
            return None
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def read_frame(fd: int) -> object | None:
    """One length-prefixed pickle from ``fd``; None at end of stream."""
    header = _read_exact(fd, 8)
    if header is None:
        return None
    body = _read_exact(fd, struct.unpack("<Q", header)[0])
    if body is None:
        return None
    return pickle.loads(body)


def write_frame(fd: int, obj: object) -> None:
    body = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    data = struct.pack("<Q", len(body)) + body
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _answer_in_child(synth: Synthesizer, request: dict) -> dict:
    """Runs the request in a forked child so the parent's library state never changes."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: synthesise, send, exit without running any Python cleanup
        os.close(read_fd)
        try:
            reply = synth.synthesize(request["ssml"], request["voice"])
        except Exception as e:  # reported to the caller, who raises it with context
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        try:
            write_frame(write_fd, reply)
        finally:
            os._exit(0)
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], REQUEST_TIMEOUT_S)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            return {"ok": False, "error": f"synthesis timed out after {REQUEST_TIMEOUT_S} s"}
        reply = read_frame(read_fd)
    finally:
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
    if reply is None:
        return {"ok": False, "error": f"synthesis process died (wait status {status})"}
    return reply


def serve(in_fd: int, out_fd: int) -> None:
    try:
        synth = Synthesizer()
    except Exception as e:
        write_frame(out_fd, {"ok": False, "error": f"{type(e).__name__}: {e}"})
        return
    write_frame(out_fd, {"ok": True, "sample_rate": synth.sample_rate, "version": synth.version,
                         "data_path": synth.data_path})
    while True:
        request = read_frame(in_fd)
        if request is None:
            return
        write_frame(out_fd, _answer_in_child(synth, request))


if __name__ == "__main__":
    if not hasattr(os, "fork"):
        sys.exit("hmaf espeak server needs os.fork (Linux or macOS)")
    # Replies go to the real stdout fd; anything the library prints goes to stderr instead.
    reply_fd = os.dup(1)
    os.dup2(2, 1)
    serve(0, reply_fd)
