"""Corpus reader: a folder, an audio file or a CSV manifest -> labelled clips.

Labels, speakers and genders come from file names, tried in this order (first match wins):

==========  ================================  ============================================
dataset     file name                         meaning
==========  ================================  ============================================
ravdess     ``03-01-05-01-02-01-12.wav``      3rd field emotion 01-08, 7th actor (odd male)
crema-d     ``1001_DFA_ANG_XX.wav``           actor 1001-1091, emotion code; gender from
                                              ``VideoDemographics.csv`` found in the tree
tess        ``OAF_back_angry.wav``            speaker OAF/YAF (female), word, emotion
savee       ``DC_a01.wav`` or ``DC/a01.wav``  speaker DC/JE/JK/KL (male), emotion code, nn
folders     ``happy/clip.wav``                parent folder names the emotion
unlabelled  anything else                     no label, speaker or gender
==========  ================================  ============================================

Speakers are prefixed with their dataset (``ravdess_12``) so corpora never collide.
A manifest (``.csv``) lists ``path`` and optionally ``label``, ``speaker``, ``gender``.
"""

from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import dataclass

import soundfile

#: Canonical emotion labels, in RAVDESS code order (01 = neutral ... 08 = surprised).
EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")

#: Accepted spellings of each emotion (lower case) -> canonical label.
LABEL_ALIASES = {e: e for e in EMOTIONS} | {
    "anger": "angry",
    "disgusted": "disgust",
    "fear": "fearful",
    "happiness": "happy",
    "joy": "happy",
    "sadness": "sad",
    "surprise": "surprised",
}

#: Accepted manifest genders (lower case) -> "male", "female" or "" (unknown).
GENDER_ALIASES = {"male": "male", "m": "male", "1": "male",
                  "female": "female", "f": "female", "0": "female", "": ""}

#: File extensions of libsndfile formats whose names are not their extension.
_FORMAT_EXTENSIONS = {
    "AIFF": ("aiff", "aif", "aifc"),
    "AU": ("au", "snd"),
    "OGG": ("ogg", "oga", "opus"),
    "WAVEX": ("wav",),
    "IRCAM": ("sf",),
    "NIST": ("nist", "sph"),
    "SVX": ("svx", "iff"),
}

#: Lower-case extensions (no dot) of files libsndfile reads. RAW is left out: a header-less
#: file cannot be read without being told its layout.
AUDIO_EXTENSIONS = frozenset(
    ext
    for fmt in soundfile.available_formats()
    if fmt != "RAW"
    for ext in _FORMAT_EXTENSIONS.get(fmt, (fmt.lower(),))
)

#: File holding CREMA-D actor genders (columns ``ActorID``, ``Sex``).
CREMA_DEMOGRAPHICS = "VideoDemographics.csv"


class CorpusError(ValueError):
    """A corpus source that cannot be read: missing, empty or malformed."""


@dataclass(frozen=True)
class Clip:
    """One audio clip of a corpus.

    path : absolute path of the audio file.
    dataset : "ravdess", "crema-d", "tess", "savee", "folders", "manifest" or "unlabelled".
    speaker : dataset-prefixed speaker id (``ravdess_12``), or "" when unknown.
    gender : "male", "female" or "" when unknown.
    label : one of ``EMOTIONS``, or "" when unknown.
    """

    path: str
    dataset: str
    speaker: str
    gender: str
    label: str

    @property
    def gender_value(self) -> float:
        """1.0 for male, 0.0 for female, NaN when unknown."""
        return {"male": 1.0, "female": 0.0}.get(self.gender, math.nan)


@dataclass
class Corpus:
    """What a scan found: the clips, and every file that is not one.

    ignored : paths relative to the scanned folder ('/'-separated) of non-audio files and
        hidden entries (name starting with '.'; hidden folders end with '/', not entered).
    """

    clips: list[Clip]
    ignored: list[str]


def is_audio(path: str) -> bool:
    """Whether ``path`` has the extension of a format libsndfile reads (any case)."""
    return os.path.splitext(path)[1][1:].lower() in AUDIO_EXTENSIONS


_RAVDESS = re.compile(r"(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)")
_CREMA = re.compile(r"(\d{4})_[A-Z]{3}_(ANG|DIS|FEA|HAP|NEU|SAD)_[A-Z]{2}", re.I)
_CREMA_LABELS = {"ANG": "angry", "DIS": "disgust", "FEA": "fearful",
                 "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
_TESS = re.compile(
    r"(OAF|YAF)_(.+?)_(angry|disgust|fear|happy|neutral|sad|ps|pleasant_surprised?)", re.I
)
_TESS_LABELS = {"fear": "fearful", "ps": "surprised",
                "pleasant_surprise": "surprised", "pleasant_surprised": "surprised"}
_SAVEE = re.compile(r"(?:(DC|JE|JK|KL)_)?(sa|su|a|d|f|h|n)(\d\d)", re.I)
_SAVEE_SPEAKERS = ("DC", "JE", "JK", "KL")
_SAVEE_LABELS = {"a": "angry", "d": "disgust", "f": "fearful", "h": "happy",
                 "n": "neutral", "sa": "sad", "su": "surprised"}


def _ravdess(stem, parent, genders):
    m = _RAVDESS.fullmatch(stem)
    if not m or not 1 <= int(m[3]) <= 8 or int(m[7]) < 1:
        return None
    gender = ("female", "male")[int(m[7]) % 2]
    return "ravdess", f"ravdess_{m[7]}", gender, EMOTIONS[int(m[3]) - 1]


def _crema(stem, parent, genders):
    m = _CREMA.fullmatch(stem)
    if not m or not 1001 <= int(m[1]) <= 1091:
        return None
    return "crema-d", f"crema-d_{m[1]}", genders.get(m[1], ""), _CREMA_LABELS[m[2].upper()]


def _tess(stem, parent, genders):
    m = _TESS.fullmatch(stem)
    if not m:
        return None
    emotion = m[3].lower()
    return "tess", f"tess_{m[1].upper()}", "female", _TESS_LABELS.get(emotion, emotion)


def _savee(stem, parent, genders):
    m = _SAVEE.fullmatch(stem)
    speaker = (m[1] or parent).upper() if m else ""
    if speaker not in _SAVEE_SPEAKERS:
        return None
    return "savee", f"savee_{speaker}", "male", _SAVEE_LABELS[m[2].lower()]


def _folders(stem, parent, genders):
    label = LABEL_ALIASES.get(parent.lower())
    return ("folders", "", "", label) if label else None


_PARSERS = (_ravdess, _crema, _tess, _savee, _folders)


def parse_path(path: str | os.PathLike, crema_genders: dict[str, str] | None = None) -> Clip:
    """The clip an audio file is, from its name and parent folder name.

    ``crema_genders`` maps CREMA-D actor ids ("1001") to "male"/"female".
    """
    path = os.path.abspath(path)
    folder, name = os.path.split(path)
    stem, parent = os.path.splitext(name)[0], os.path.basename(folder)
    for parser in _PARSERS:
        meta = parser(stem, parent, crema_genders or {})
        if meta:
            return Clip(path, *meta)
    return Clip(path, "unlabelled", "", "", "")


def read_crema_genders(path: str | os.PathLike) -> dict[str, str]:
    """CREMA-D actor id -> "male"/"female", from ``VideoDemographics.csv``."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not {"ActorID", "Sex"} <= set(reader.fieldnames or ()):
            raise CorpusError(f"{path}: expected columns ActorID and Sex")
        sexes = {row["ActorID"].strip(): (row["Sex"] or "").strip().lower() for row in reader}
    return {actor: sex for actor, sex in sexes.items() if sex in ("male", "female")}


def is_url(path: str) -> bool:
    """True for an fsspec URL such as ``s3://bucket/a.wav`` (kept as is, never resolved)."""
    return "://" in path


def read_manifest(path: str | os.PathLike) -> list[Clip]:
    """Clips listed in a CSV manifest, in manifest order.

    Columns: ``path`` (relative to the manifest's folder, absolute, or an fsspec URL such
    as ``s3://bucket/a.wav``), optional ``label``
    (an emotion or alias), ``speaker``, ``gender`` (male/female/m/f/1/0); others ignored.
    Listed files are not checked for existence.
    """
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    clips = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        reader.fieldnames = [(c or "").strip().lower() for c in reader.fieldnames or ()]
        if "path" not in reader.fieldnames:
            raise CorpusError(f"{path}: manifest has no 'path' column")
        for row in reader:
            where = f"{path}, line {reader.line_num}"
            audio, label, speaker, gender = (
                (row.get(c) or "").strip() for c in ("path", "label", "speaker", "gender")
            )
            if not audio:
                raise CorpusError(f"{where}: empty path")
            if label and label.lower() not in LABEL_ALIASES:
                expected = ", ".join(EMOTIONS)
                raise CorpusError(f"{where}: unknown label {label!r} (expected one of {expected})")
            if gender.lower() not in GENDER_ALIASES:
                expected = "male/female/m/f/1/0"
                raise CorpusError(f"{where}: unknown gender {gender!r} (expected {expected})")
            clips.append(Clip(
                audio if is_url(audio) else os.path.abspath(os.path.join(folder, audio)),
                "manifest",
                speaker,
                GENDER_ALIASES[gender.lower()],
                LABEL_ALIASES.get(label.lower(), ""),
            ))
    if not clips:
        raise CorpusError(f"{path}: manifest lists no clips")
    return clips


def _raise(error: OSError):
    raise CorpusError(f"cannot read {error.filename}: {error.strerror}")


def _walk(root: str) -> tuple[list[str], list[str]]:
    """Relative '/'-separated paths under ``root``: (visible files, hidden entries), sorted."""
    files, hidden = [], []
    for folder, dirs, names in os.walk(root, onerror=_raise):
        rel = os.path.relpath(folder, root)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        hidden += [prefix + d + "/" for d in dirs if d.startswith(".")]
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            (hidden if name.startswith(".") else files).append(prefix + name)
    return sorted(files), sorted(hidden)


def _scan_folder(root: str) -> Corpus:
    files, hidden = _walk(root)
    audio = [f for f in files if is_audio(f)]
    other = [f for f in files if not is_audio(f)]
    if not audio:
        raise CorpusError(
            f"no audio files in {root} ({len(other)} non-audio files, {len(hidden)} hidden entries)"
        )
    name = CREMA_DEMOGRAPHICS.lower()
    demographics = [f for f in other if f.rsplit("/", 1)[-1].lower() == name]
    genders = read_crema_genders(os.path.join(root, demographics[0])) if demographics else {}
    clips = [parse_path(os.path.join(root, f), genders) for f in audio]
    return Corpus(clips, sorted(other + hidden))


def scan(source: str | os.PathLike) -> Corpus:
    """Clips of a folder (recursive, sorted by relative path), audio file or ``.csv`` manifest."""
    path = os.path.abspath(source)
    if not os.path.exists(path):
        raise CorpusError(f"corpus source not found: {os.fspath(source)}")
    if os.path.isdir(path):
        return _scan_folder(path)
    if path.lower().endswith(".csv"):
        return Corpus(read_manifest(path), [])
    if is_audio(path):
        return Corpus([parse_path(path)], [])
    raise CorpusError(f"not an audio file, folder or .csv manifest: {os.fspath(source)}")


def read_corpus(source: str | os.PathLike) -> list[Clip]:
    """The clips of ``source`` (see ``scan``)."""
    return scan(source).clips
