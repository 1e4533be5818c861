"""Corpus reader: a folder, an audio file or a CSV manifest -> labelled clips.

Labels, speakers and genders come from file names, tried in this order (first match wins):

==========  ====================================  ==========================================
dataset     file name                             meaning
==========  ====================================  ==========================================
ravdess     ``03-01-05-01-02-01-12.wav``          3rd field emotion 01-08, 7th actor (odd male)
crema-d     ``1001_DFA_ANG_XX.wav``               actor 1001-1091, emotion code; gender from
                                                  ``VideoDemographics.csv`` found in the tree
tess        ``OAF_back_angry.wav``                speaker OAF/YAF (female), word, emotion
savee       ``DC_a01.wav`` or ``DC/a01.wav``      speaker DC/JE/JK/KL (male), emotion code, nn
nemo        ``EB0_anger_1.wav``                   speaker, emotion word, take; gender from
                                                  nEMO's ``data.tsv`` found in the tree
ased        ``a5-03-01-02-50.wav``                1st letter emotion n/f/h/s/a, 4th field
                                                  gender (01 female, 02 male), 5th speaker
emodb       ``03a01Fa.wav``                       speaker 03-16, text, emotion W/L/E/A/F/T/N,
                                                  version; L (boredom): see below
emovo       ``dis-f1-b1.wav``                     emotion (Italian code), speaker f1-m3, text
urdu        ``SM1_F10_A010.wav``                  speaker S + gender M/F + number, file,
                                                  emotion A/H/N/S + number (label folders)
turev-db    ``Sound Source/Angry/1234_kz_a.wav``  emotion folder Angry/Calm/Happy/Sad under
                                                  ``Sound Source``, number, speaker, word
folders     ``happy/clip.wav``                    parent folder names the emotion
unlabelled  anything else                         no label, speaker or gender
==========  ====================================  ==========================================

Speakers are prefixed with their dataset (``ravdess_12``) so corpora never collide. ASED
numbers its speakers per gender, so its speaker id keeps both fields (``ased_02-50``).
EmoDB's boredom (``L``) is none of serfast's emotions: such a clip is kept, with its
dataset, speaker and gender but no label (training leaves it out, predict still labels
it), and the scan records one line saying so in :attr:`Corpus.notes`.
A manifest (``.csv``) lists ``path`` and optionally ``label``, ``speaker``, ``gender``. Its
speakers are prefixed with the manifest's name (its file name, or its folder's name for a
file called ``manifest.csv``: ``nemo/manifest.csv`` -> ``nemo``), so speaker ``1`` of two
manifests is two speakers; a speaker that already starts with that name and ``-`` or
``_`` (``nemo-EB0``) is kept as it is. A manifest's paths may be fsspec URLs of the
protocols in :data:`URL_PROTOCOLS` (local files and object stores); others are refused
unless named in the environment variable ``SERFAST_URL_PROTOCOLS`` (a comma list, set
wherever the workers run too).

A folder's symbolic links to folders are followed; one whose target was already scanned
(a loop, or a second link to one folder) is not entered and is listed in
:attr:`Corpus.ignored`.
"""

from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import dataclass, field

import soundfile

__all__ = [
    "AUDIO_EXTENSIONS", "CREMA_DEMOGRAPHICS", "EMOTIONS", "GENDER_ALIASES", "LABEL_ALIASES",
    "NEMO_METADATA", "UNLABELLED_REASONS", "URL_PROTOCOLS", "URL_PROTOCOLS_ENV", "Clip",
    "Corpus", "CorpusError", "is_audio", "is_url", "manifest_name", "parse_path",
    "read_corpus", "read_crema_genders", "read_manifest", "read_nemo_genders", "scan",
    "url_refusal",
]

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

#: nEMO's metadata table (tab-separated; columns ``speaker_id``, ``gender`` among others).
NEMO_METADATA = "data.tsv"

#: Why clips of a dataset that its parser found but could not label have no label.
UNLABELLED_REASONS = {
    "emodb": "EmoDB emotion L (boredom) is none of serfast's emotions; kept without a label "
             "(training leaves it out)",
}


#: fsspec protocols a path may name by default: local files, memory, object stores.
URL_PROTOCOLS = frozenset({"file", "local", "memory", "s3", "s3a", "gs", "gcs", "az",
                           "abfs", "abfss", "adl"})
#: Environment variable naming more protocols to allow (comma list, e.g. ``https,sftp``).
URL_PROTOCOLS_ENV = "SERFAST_URL_PROTOCOLS"


class CorpusError(ValueError):
    """A corpus source that cannot be read: missing, empty or malformed."""


def gender_value(gender: str) -> float:
    """The number a feature row holds for ``gender``: 1.0 male, 0.0 female, NaN unknown."""
    return {"male": 1.0, "female": 0.0}.get(gender, math.nan)


@dataclass(frozen=True)
class Clip:
    """One audio clip of a corpus.

    path : absolute path of the audio file.
    dataset : a dataset of the module's table ("ravdess", ..., "turev-db", "folders",
        "unlabelled"), or "manifest".
    speaker : dataset-prefixed speaker id (``ravdess_12``; in a manifest, prefixed with
        the manifest's name), or "" when unknown.
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
        return gender_value(self.gender)


@dataclass
class Corpus:
    """What a scan found: the clips, and every file that is not one.

    ignored : paths relative to the scanned folder ('/'-separated) of non-audio files,
        hidden entries (name starting with '.'; hidden folders end with '/', not entered)
        and links to folders already scanned (ending with '/', not entered).
    notes : one line per clip kept without the label its corpus gives it,
        ``"<relative path>: <reason>"`` (see ``UNLABELLED_REASONS``).
    """

    clips: list[Clip]
    ignored: list[str]
    notes: list[str] = field(default_factory=list)


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
_NEMO = re.compile(r"([A-Z]{2}\d)_(anger|fear|happiness|neutral|sadness|surprised)_(\d+)")
_ASED = re.compile(r"([nfhsa])\d-(\d\d)-(\d\d)-(0[12])-(\d\d)", re.I)
_ASED_LABELS = {"n": "neutral", "f": "fearful", "h": "happy", "s": "sad", "a": "angry"}
_EMODB = re.compile(r"(\d\d)([ab]\d\d)([WLEAFTN])([a-z])")
_EMODB_GENDERS = {"03": "male", "08": "female", "09": "female", "10": "male", "11": "male",
                  "12": "male", "13": "female", "14": "female", "15": "male", "16": "female"}
_EMODB_LABELS = {"W": "angry", "L": "", "E": "disgust", "A": "fearful", "F": "happy",
                 "T": "sad", "N": "neutral"}
_EMOVO = re.compile(r"(dis|gio|neu|pau|rab|sor|tri)-([fm][1-3])-([a-z]\d+)", re.I)
_EMOVO_LABELS = {"dis": "disgust", "gio": "happy", "neu": "neutral", "pau": "fearful",
                 "rab": "angry", "sor": "surprised", "tri": "sad"}
_URDU = re.compile(r"(S([MF])\d+)_F\d+_([AHNS])\d+", re.I)
_URDU_LABELS = {"A": "angry", "H": "happy", "N": "neutral", "S": "sad"}
_TUREV = re.compile(r"\d+_([^\W_]+)_.+")
_TUREV_LABELS = {"angry": "angry", "calm": "calm", "happy": "happy", "sad": "sad"}
_TUREV_ROOT = "sound source"


def _ravdess(stem, folders, genders):
    m = _RAVDESS.fullmatch(stem)
    if not m or not 1 <= int(m[3]) <= 8 or int(m[7]) < 1:
        return None
    gender = ("female", "male")[int(m[7]) % 2]
    return "ravdess", f"ravdess_{m[7]}", gender, EMOTIONS[int(m[3]) - 1]


def _crema(stem, folders, genders):
    m = _CREMA.fullmatch(stem)
    if not m or not 1001 <= int(m[1]) <= 1091:
        return None
    gender = genders.get("crema-d", {}).get(m[1], "")
    return "crema-d", f"crema-d_{m[1]}", gender, _CREMA_LABELS[m[2].upper()]


def _tess(stem, folders, genders):
    m = _TESS.fullmatch(stem)
    if not m:
        return None
    emotion = m[3].lower()
    return "tess", f"tess_{m[1].upper()}", "female", _TESS_LABELS.get(emotion, emotion)


def _savee(stem, folders, genders):
    m = _SAVEE.fullmatch(stem)
    speaker = (m[1] or folders[0]).upper() if m else ""
    if speaker not in _SAVEE_SPEAKERS:
        return None
    return "savee", f"savee_{speaker}", "male", _SAVEE_LABELS[m[2].lower()]


def _nemo(stem, folders, genders):
    m = _NEMO.fullmatch(stem)
    if not m:
        return None
    gender = genders.get("nemo", {}).get(m[1], "")
    return "nemo", f"nemo_{m[1]}", gender, LABEL_ALIASES[m[2]]


def _ased(stem, folders, genders):
    m = _ASED.fullmatch(stem)
    if not m:
        return None
    gender = "female" if m[4] == "01" else "male"
    return "ased", f"ased_{m[4]}-{m[5]}", gender, _ASED_LABELS[m[1].lower()]


def _emodb(stem, folders, genders):
    m = _EMODB.fullmatch(stem)
    if not m or m[1] not in _EMODB_GENDERS:
        return None
    return "emodb", f"emodb_{m[1]}", _EMODB_GENDERS[m[1]], _EMODB_LABELS[m[3]]


def _emovo(stem, folders, genders):
    m = _EMOVO.fullmatch(stem)
    if not m:
        return None
    speaker = m[2].lower()
    gender = "female" if speaker[0] == "f" else "male"
    return "emovo", f"emovo_{speaker}", gender, _EMOVO_LABELS[m[1].lower()]


def _urdu(stem, folders, genders):
    m = _URDU.fullmatch(stem)
    if not m:
        return None
    gender = "male" if m[2].upper() == "M" else "female"
    return "urdu", f"urdu_{m[1].upper()}", gender, _URDU_LABELS[m[3].upper()]


def _turev(stem, folders, genders):
    m = _TUREV.fullmatch(stem)
    label = _TUREV_LABELS.get(folders[0].lower())
    if not m or not label or folders[1].lower() != _TUREV_ROOT:
        return None
    return "turev-db", f"turev-db_{m[1].lower()}", "", label


def _folders(stem, folders, genders):
    label = LABEL_ALIASES.get(folders[0].lower())
    return ("folders", "", "", label) if label else None


_PARSERS = (_ravdess, _crema, _tess, _savee, _nemo, _ased, _emodb, _emovo, _urdu, _turev,
            _folders)


def parse_path(path: str | os.PathLike,
               genders: dict[str, dict[str, str]] | None = None) -> Clip:
    """The clip an audio file is, from its name and the names of its two parent folders.

    ``genders`` maps a dataset to its speakers' genders, keyed by the corpus's own speaker
    id: ``{"crema-d": {"1001": "male"}, "nemo": {"EB0": "female"}}``.
    """
    path = os.path.abspath(path)
    folder, name = os.path.split(path)
    stem = os.path.splitext(name)[0]
    parent = os.path.basename(folder)
    folders = (parent, os.path.basename(os.path.dirname(folder)))
    for parser in _PARSERS:
        meta = parser(stem, folders, genders or {})
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


def read_nemo_genders(path: str | os.PathLike) -> dict[str, str]:
    """nEMO speaker id ("EB0") -> "male"/"female", from nEMO's tab-separated ``data.tsv``."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f, delimiter="\t")
        reader.fieldnames = [(c or "").strip().lower() for c in reader.fieldnames or ()]
        if not {"speaker_id", "gender"} <= set(reader.fieldnames):
            raise CorpusError(f"{path}: expected tab-separated columns speaker_id and gender")
        genders = {(row["speaker_id"] or "").strip():
                   GENDER_ALIASES.get((row["gender"] or "").strip().lower(), "")
                   for row in reader}
    return {speaker: g for speaker, g in genders.items() if speaker and g}


#: Gender tables found anywhere in a scanned tree: dataset -> (file name, reader). A table
#: is read only when the tree holds clips of its dataset.
_GENDER_TABLES = {"crema-d": (CREMA_DEMOGRAPHICS, read_crema_genders),
                  "nemo": (NEMO_METADATA, read_nemo_genders)}


def is_url(path: str) -> bool:
    """True for an fsspec URL such as ``s3://bucket/a.wav`` (kept as is, never resolved)."""
    return "://" in path


def url_refusal(path: str) -> str:
    """Why the URL ``path`` may not be opened ("" when it may): a protocol (of each link
    of an fsspec chain ``a::b://...``) outside :data:`URL_PROTOCOLS` and the environment
    variable :data:`URL_PROTOCOLS_ENV`."""
    extra = {p.strip().lower() for p in os.environ.get(URL_PROTOCOLS_ENV, "").split(",")}
    allowed = URL_PROTOCOLS | (extra - {""})
    for link in path.split("::"):
        protocol = link.split("://", 1)[0].lower() if "://" in link else link.lower()
        if protocol not in allowed:
            return (f"protocol {protocol!r} is not allowed (allowed: "
                    f"{', '.join(sorted(allowed))}; {URL_PROTOCOLS_ENV}=a,b allows more)")
    return ""


def manifest_name(path: str | os.PathLike) -> str:
    """The name a manifest's speakers are prefixed with: its file name without the
    extension, or its folder's name when the file is called ``manifest``."""
    folder, name = os.path.split(os.path.abspath(path))
    stem = os.path.splitext(name)[0]
    return os.path.basename(folder) if stem.lower() == "manifest" and folder else stem


def _manifest_speaker(name: str, speaker: str) -> str:
    if not speaker or speaker.lower().startswith((name.lower() + "-", name.lower() + "_")):
        return speaker
    return f"{name}_{speaker}"


def read_manifest(path: str | os.PathLike) -> list[Clip]:
    """Clips listed in a CSV manifest, in manifest order.

    Columns: ``path`` (relative to the manifest's folder, absolute, or an fsspec URL such
    as ``s3://bucket/a.wav`` of an allowed protocol, see :func:`url_refusal`), optional
    ``label`` (an emotion or alias), ``speaker`` (prefixed with :func:`manifest_name`),
    ``gender`` (male/female/m/f/1/0); others ignored. Listed files are not checked for
    existence.
    """
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    name = manifest_name(path)
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
            if is_url(audio) and url_refusal(audio):
                raise CorpusError(f"{where}: {audio}: {url_refusal(audio)}")
            if label and label.lower() not in LABEL_ALIASES:
                expected = ", ".join(EMOTIONS)
                raise CorpusError(f"{where}: unknown label {label!r} (expected one of {expected})")
            if gender.lower() not in GENDER_ALIASES:
                expected = "male/female/m/f/1/0"
                raise CorpusError(f"{where}: unknown gender {gender!r} (expected {expected})")
            clips.append(Clip(
                audio if is_url(audio) else os.path.abspath(os.path.join(folder, audio)),
                "manifest",
                _manifest_speaker(name, speaker),
                GENDER_ALIASES[gender.lower()],
                LABEL_ALIASES.get(label.lower(), ""),
            ))
    if not clips:
        raise CorpusError(f"{path}: manifest lists no clips")
    return clips


def _raise(error: OSError):
    raise CorpusError(f"cannot read {error.filename}: {error.strerror}")


def _walk(root: str) -> tuple[list[str], list[str]]:
    """Relative '/'-separated paths under ``root``: (visible files, entries not entered:
    hidden ones and links to folders already scanned), sorted. Links to folders are
    followed, each target folder once (sorted order decides which path reaches it)."""
    files, hidden = [], []
    st = os.stat(root)
    seen = {(st.st_dev, st.st_ino)}
    for folder, dirs, names in os.walk(root, onerror=_raise, followlinks=True):
        rel = os.path.relpath(folder, root)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        hidden += [prefix + d + "/" for d in dirs if d.startswith(".")]
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for d in list(dirs):
            try:
                st = os.stat(os.path.join(folder, d))
            except OSError as err:
                _raise(err)
            if (st.st_dev, st.st_ino) in seen:
                hidden.append(prefix + d + "/")
                dirs.remove(d)
            seen.add((st.st_dev, st.st_ino))
        for name in names:
            (hidden if name.startswith(".") else files).append(prefix + name)
    return sorted(files), sorted(hidden)


def _notes(clips: list[Clip], root: str) -> list[str]:
    """One line per clip its dataset's parser found but could not label."""
    return [f"{os.path.relpath(c.path, root).replace(os.sep, '/')}: "
            f"{UNLABELLED_REASONS[c.dataset]}"
            for c in clips if not c.label and c.dataset in UNLABELLED_REASONS]


def _scan_folder(root: str) -> Corpus:
    files, hidden = _walk(root)
    audio = [f for f in files if is_audio(f)]
    other = [f for f in files if not is_audio(f)]
    if not audio:
        raise CorpusError(
            f"no audio files in {root} ({len(other)} non-audio files, {len(hidden)} hidden entries)"
        )
    clips = [parse_path(os.path.join(root, f)) for f in audio]
    datasets = {c.dataset for c in clips}
    genders = {}
    for dataset, (name, read) in _GENDER_TABLES.items():
        tables = [f for f in other if f.rsplit("/", 1)[-1].lower() == name.lower()]
        if dataset in datasets and tables:
            genders[dataset] = read(os.path.join(root, tables[0]))
    if genders:
        clips = [parse_path(c.path, genders) if c.dataset in genders else c for c in clips]
    return Corpus(clips, sorted(other + hidden), _notes(clips, root))


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
        clips = [parse_path(path)]
        return Corpus(clips, [], _notes(clips, os.path.dirname(path)))
    raise CorpusError(f"not an audio file, folder or .csv manifest: {os.fspath(source)}")


def read_corpus(source: str | os.PathLike) -> list[Clip]:
    """The clips of ``source`` (see ``scan``)."""
    return scan(source).clips
