"""Tests of serfast.io.corpus: file-name parsers, folder scans, manifests, errors."""

from __future__ import annotations

import math
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile

from serfast.io.corpus import (
    AUDIO_EXTENSIONS,
    EMOTIONS,
    UNLABELLED_REASONS,
    Clip,
    Corpus,
    CorpusError,
    parse_path,
    read_corpus,
    read_manifest,
    scan,
)

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
RAVDESS = CORPORA / "ravdess"


def touch(root: Path, *names: str, data: bytes = b"RIFF") -> list[Path]:
    """Create files (and their folders) under ``root``; return their paths."""
    paths = []
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    return paths


def meta(clip: Clip) -> tuple[str, str, str, str]:
    return clip.dataset, clip.speaker, clip.gender, clip.label


def one(root: Path, name: str) -> Clip:
    """The clip a single file named ``name`` becomes when its folder is scanned."""
    touch(root, name)
    (clip,) = read_corpus(root)
    return clip


# --- audio extensions ---------------------------------------------------------------------


def test_audio_extensions_cover_common_aliases():
    for ext in ("wav", "flac", "ogg", "oga", "aiff", "aif", "au", "snd", "caf", "w64", "rf64"):
        assert ext in AUDIO_EXTENSIONS
    assert ("opus" in AUDIO_EXTENSIONS) == ("OGG" in soundfile.available_formats())
    assert ("mp3" in AUDIO_EXTENSIONS) == ("MP3" in soundfile.available_formats())
    assert not {"txt", "csv", "json", "raw", ""} & AUDIO_EXTENSIONS


# --- RAVDESS ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("03-01-05-01-02-01-12.wav", ("ravdess", "ravdess_12", "female", "angry")),
        ("03-01-01-01-01-01-01.wav", ("ravdess", "ravdess_01", "male", "neutral")),
        ("03-01-02-02-01-02-07.flac", ("ravdess", "ravdess_07", "male", "calm")),
        ("03-01-08-02-02-02-24.WAV", ("ravdess", "ravdess_24", "female", "surprised")),
        ("03-02-06-01-01-01-03.wav", ("ravdess", "ravdess_03", "male", "fearful")),
    ],
)
def test_ravdess(tmp_path, name, expected):
    assert meta(one(tmp_path, name)) == expected


def test_ravdess_all_eight_emotions_in_code_order(tmp_path):
    names = [f"03-01-{e:02d}-01-01-01-05.wav" for e in range(1, 9)]
    touch(tmp_path, *names)
    assert tuple(c.label for c in read_corpus(tmp_path)) == EMOTIONS


@pytest.mark.parametrize(
    "name", ["03-01-09-01-01-01-12.wav", "03-01-00-01-01-01-12.wav", "03-01-05-01-02-01-00.wav",
             "03-01-05-01-02-12.wav", "3-1-5-1-2-1-12.wav"]
)
def test_ravdess_lookalikes_are_unlabelled(tmp_path, name):
    assert meta(one(tmp_path, name)) == ("unlabelled", "", "", "")


# --- CREMA-D ------------------------------------------------------------------------------

CREMA_CODES = {"ANG": "angry", "DIS": "disgust", "FEA": "fearful",
               "HAP": "happy", "NEU": "neutral", "SAD": "sad"}


@pytest.mark.parametrize("code, label", sorted(CREMA_CODES.items()))
def test_crema_without_demographics_has_unknown_gender(tmp_path, code, label):
    clip = one(tmp_path, f"1001_DFA_{code}_XX.wav")
    assert meta(clip) == ("crema-d", "crema-d_1001", "", label)
    assert math.isnan(clip.gender_value)


def test_crema_with_demographics_anywhere_in_tree(tmp_path):
    touch(tmp_path, "AudioWAV/1001_DFA_ANG_XX.wav", "AudioWAV/1002_IEO_HAP_HI.wav",
          "AudioWAV/1091_TSI_sad_lo.wav", "AudioWAV/1003_MTI_NEU_XX.wav")
    (tmp_path / "meta" / "VideoDemographics.csv").parent.mkdir()
    (tmp_path / "meta" / "VideoDemographics.csv").write_text(
        "\ufeffActorID,Age,Sex,Race,Ethnicity\n"
        "1001,51,Male,Caucasian,Not Hispanic\n"
        "1002,21,Female,Caucasian,Not Hispanic\n"
        "1091,29,Female,Asian,Not Hispanic\n",
        encoding="utf-8",
    )
    corpus = scan(tmp_path)
    assert [meta(c) for c in corpus.clips] == [
        ("crema-d", "crema-d_1001", "male", "angry"),
        ("crema-d", "crema-d_1002", "female", "happy"),
        ("crema-d", "crema-d_1003", "", "neutral"),  # not in the demographics file
        ("crema-d", "crema-d_1091", "female", "sad"),
    ]
    assert corpus.ignored == ["meta/VideoDemographics.csv"]


def test_crema_demographics_without_columns_is_an_error(tmp_path):
    touch(tmp_path, "1001_DFA_ANG_XX.wav")
    (tmp_path / "VideoDemographics.csv").write_text("id,gender\n1001,Male\n")
    with pytest.raises(CorpusError, match="ActorID and Sex"):
        read_corpus(tmp_path)


@pytest.mark.parametrize("name", ["1000_DFA_ANG_XX.wav", "1092_DFA_ANG_XX.wav",
                                  "1001_DFA_CAL_XX.wav", "1001_DFA_ANG.wav"])
def test_crema_lookalikes_are_unlabelled(tmp_path, name):
    assert one(tmp_path, name).dataset == "unlabelled"


# --- TESS ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("OAF_back_angry.wav", ("tess", "tess_OAF", "female", "angry")),
        ("YAF_dog_pleasant_surprised.wav", ("tess", "tess_YAF", "female", "surprised")),
        ("OAF_base_ps.wav", ("tess", "tess_OAF", "female", "surprised")),
        ("YAF_bar_pleasant_surprise.wav", ("tess", "tess_YAF", "female", "surprised")),
        ("OAF_bath_fear.wav", ("tess", "tess_OAF", "female", "fearful")),
        ("YAF_chain_disgust.wav", ("tess", "tess_YAF", "female", "disgust")),
        ("yaf_Chair_Happy.WAV", ("tess", "tess_YAF", "female", "happy")),
        ("OAF_cheek_neutral.wav", ("tess", "tess_OAF", "female", "neutral")),
        ("OAF_chief_sad.wav", ("tess", "tess_OAF", "female", "sad")),
    ],
)
def test_tess(tmp_path, name, expected):
    assert meta(one(tmp_path, name)) == expected


@pytest.mark.parametrize("name", ["XAF_back_angry.wav", "OAF_angry.wav", "OAF_back_calm.wav"])
def test_tess_lookalikes_are_unlabelled(tmp_path, name):
    assert one(tmp_path, name).dataset == "unlabelled"


# --- SAVEE --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("DC_a01.wav", ("savee", "savee_DC", "male", "angry")),
        ("JE_d02.wav", ("savee", "savee_JE", "male", "disgust")),
        ("JK_f15.wav", ("savee", "savee_JK", "male", "fearful")),
        ("KL_h03.wav", ("savee", "savee_KL", "male", "happy")),
        ("DC_n30.wav", ("savee", "savee_DC", "male", "neutral")),
        ("JE_sa01.wav", ("savee", "savee_JE", "male", "sad")),
        ("JK_su12.wav", ("savee", "savee_JK", "male", "surprised")),
        ("DC/a01.wav", ("savee", "savee_DC", "male", "angry")),
        ("KL/sa15.wav", ("savee", "savee_KL", "male", "sad")),
        ("JE/su03.WAV", ("savee", "savee_JE", "male", "surprised")),
        ("AudioData/DC/n01.wav", ("savee", "savee_DC", "male", "neutral")),
    ],
)
def test_savee(tmp_path, name, expected):
    clip = one(tmp_path, name)
    assert meta(clip) == expected
    assert clip.gender_value == 1.0


@pytest.mark.parametrize("name", ["XX_a01.wav", "a01.wav", "other/a01.wav",
                                  "DC_s01.wav", "DC_a1.wav", "DC_b01.wav"])
def test_savee_lookalikes_are_unlabelled(tmp_path, name):
    assert one(tmp_path, name).dataset == "unlabelled"


# --- nEMO ---------------------------------------------------------------------------------

NEMO_WORDS = {"anger": "angry", "fear": "fearful", "happiness": "happy", "neutral": "neutral",
              "sadness": "sad", "surprised": "surprised"}


@pytest.mark.parametrize("word, label", sorted(NEMO_WORDS.items()))
def test_nemo_without_metadata_has_unknown_gender(tmp_path, word, label):
    clip = one(tmp_path, f"EB0/EB0_{word}_12.wav")
    assert meta(clip) == ("nemo", "nemo_EB0", "", label)


def test_nemo_genders_from_data_tsv_anywhere_in_tree(tmp_path):
    touch(tmp_path, "samples/EB0_anger_1.wav", "samples/KS0_sadness_10.flac",
          "samples/XY1_neutral_2.wav")
    (tmp_path / "data.tsv").write_text(
        "file_id\temotion\traw_text\tnormalized_text\tspeaker_id\tgender\tage\n"
        "EB0_anger_1.wav\tanger\tCo?\tco\tEB0\tfemale\t22\n"
        "KS0_sadness_10.wav\tsadness\tNie.\tnie\tKS0\tmale\t24\n",
        encoding="utf-8")
    corpus = scan(tmp_path)
    assert [meta(c) for c in corpus.clips] == [
        ("nemo", "nemo_EB0", "female", "angry"),
        ("nemo", "nemo_KS0", "male", "sad"),
        ("nemo", "nemo_XY1", "", "neutral"),  # not in data.tsv
    ]
    assert corpus.ignored == ["data.tsv"]


def test_nemo_data_tsv_without_columns_is_an_error(tmp_path):
    touch(tmp_path, "EB0_anger_1.wav")
    (tmp_path / "data.tsv").write_text("file_id\temotion\nEB0_anger_1\tanger\n")
    with pytest.raises(CorpusError, match="speaker_id and gender"):
        read_corpus(tmp_path)


def test_a_data_tsv_of_another_corpus_is_not_read(tmp_path):
    touch(tmp_path, "happy/a.wav")
    (tmp_path / "data.tsv").write_text("anything,else\n")
    assert meta(scan(tmp_path).clips[0]) == ("folders", "", "", "happy")


@pytest.mark.parametrize("name", ["EB0_boredom_1.wav", "eb0_anger_1.wav", "EB0_anger.wav",
                                  "EBC_anger_1.wav", "EB0_anger_x.wav"])
def test_nemo_lookalikes_are_not_nemo(tmp_path, name):
    assert one(tmp_path, name).dataset == "unlabelled"


# --- ASED ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("a5-03-01-02-50.wav", ("ased", "ased_02-50", "male", "angry")),
        ("n1-01-01-01-01.wav", ("ased", "ased_01-01", "female", "neutral")),
        ("f2-12-03-01-07.flac", ("ased", "ased_01-07", "female", "fearful")),
        ("h3-01-02-02-09.wav", ("ased", "ased_02-09", "male", "happy")),
        ("S4-04-02-01-29.wav", ("ased", "ased_01-29", "female", "sad")),
    ],
)
def test_ased(tmp_path, name, expected):
    assert meta(one(tmp_path, name)) == expected


def test_ased_speaker_numbers_are_per_gender(tmp_path):
    touch(tmp_path, "a5-01-01-01-09.wav", "a5-01-01-02-09.wav")
    assert [c.speaker for c in read_corpus(tmp_path)] == ["ased_01-09", "ased_02-09"]


@pytest.mark.parametrize("name", ["x5-03-01-02-50.wav", "a5-03-01-03-50.wav",
                                  "a5-03-01-02.wav", "a-03-01-02-50.wav", "a5-3-1-2-50.wav"])
def test_ased_lookalikes_are_unlabelled(tmp_path, name):
    assert one(tmp_path, name).dataset == "unlabelled"


# --- EmoDB --------------------------------------------------------------------------------

EMODB_CODES = {"W": "angry", "E": "disgust", "A": "fearful", "F": "happy", "T": "sad",
               "N": "neutral"}


@pytest.mark.parametrize("code, label", sorted(EMODB_CODES.items()))
def test_emodb(tmp_path, code, label):
    assert meta(one(tmp_path, f"03a01{code}a.wav")) == ("emodb", "emodb_03", "male", label)


@pytest.mark.parametrize("speaker, gender", [("03", "male"), ("08", "female"),
                                             ("09", "female"), ("10", "male"),
                                             ("11", "male"), ("12", "male"), ("13", "female"),
                                             ("14", "female"), ("15", "male"),
                                             ("16", "female")])
def test_emodb_speakers_and_genders(tmp_path, speaker, gender):
    assert meta(one(tmp_path, f"{speaker}b10Nc.wav")) == (
        "emodb", f"emodb_{speaker}", gender, "neutral")


def test_emodb_boredom_is_kept_unlabelled_with_a_note(tmp_path):
    touch(tmp_path, "wav/03a01La.wav", "wav/03a01Wa.wav", "wav/16b10Lb.wav")
    corpus = scan(tmp_path)
    assert [meta(c) for c in corpus.clips] == [
        ("emodb", "emodb_03", "male", ""),
        ("emodb", "emodb_03", "male", "angry"),
        ("emodb", "emodb_16", "female", ""),
    ]
    reason = UNLABELLED_REASONS["emodb"]
    assert "boredom" in reason and "\n" not in reason
    assert corpus.notes == [f"wav/03a01La.wav: {reason}", f"wav/16b10Lb.wav: {reason}"]
    (path,) = touch(tmp_path, "one/08a02Lc.wav")
    assert scan(path).notes == [f"08a02Lc.wav: {reason}"]


@pytest.mark.parametrize("name", ["04a01Fa.wav", "03a01Xa.wav", "03c01Fa.wav", "03a01F.wav",
                                  "03a01FA.wav"])
def test_emodb_lookalikes_are_unlabelled(tmp_path, name):
    assert one(tmp_path, name).dataset == "unlabelled"


# --- EMOVO --------------------------------------------------------------------------------

EMOVO_CODES = {"dis": "disgust", "gio": "happy", "neu": "neutral", "pau": "fearful",
               "rab": "angry", "sor": "surprised", "tri": "sad"}


@pytest.mark.parametrize("code, label", sorted(EMOVO_CODES.items()))
def test_emovo(tmp_path, code, label):
    assert meta(one(tmp_path, f"{code}-f1-b1.wav")) == ("emovo", "emovo_f1", "female", label)


def test_emovo_speakers(tmp_path):
    touch(tmp_path, "f3/neu-f3-l4.wav", "m1/tri-m1-n5.wav", "m3/gio-m3-d2.wav")
    assert [meta(c) for c in read_corpus(tmp_path)] == [
        ("emovo", "emovo_f3", "female", "neutral"),
        ("emovo", "emovo_m1", "male", "sad"),
        ("emovo", "emovo_m3", "male", "happy"),
    ]


@pytest.mark.parametrize("name", ["dis-f4-b1.wav", "dis-x1-b1.wav", "ang-f1-b1.wav",
                                  "dis-f1.wav", "dis_f1_b1.wav"])
def test_emovo_lookalikes_are_unlabelled(tmp_path, name):
    assert one(tmp_path, name).dataset == "unlabelled"


# --- URDU ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Angry/SM1_F10_A010.wav", ("urdu", "urdu_SM1", "male", "angry")),
        ("Happy/SF3_F2_H05.wav", ("urdu", "urdu_SF3", "female", "happy")),
        ("Neutral/SM27_F7_N07.wav", ("urdu", "urdu_SM27", "male", "neutral")),
        ("Sad/SF11_F1_S001.wav", ("urdu", "urdu_SF11", "female", "sad")),
        ("SM1_F10_A010.wav", ("urdu", "urdu_SM1", "male", "angry")),
    ],
)
def test_urdu(tmp_path, name, expected):
    assert meta(one(tmp_path, name)) == expected


@pytest.mark.parametrize("name", ["SX1_F10_A010.wav", "SM1_F10_X010.wav", "SM_F10_A010.wav",
                                  "SM1_A010.wav"])
def test_urdu_lookalikes_are_unlabelled(tmp_path, name):
    assert one(tmp_path, name).dataset == "unlabelled"


# --- TurEV-DB -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Sound Source/Angry/1234_kz_word.wav", ("turev-db", "turev-db_kz", "", "angry")),
        ("Sound Source/Calm/12_ek_ağlamak.wav", ("turev-db", "turev-db_ek", "", "calm")),
        ("TurEV-DB/Sound Source/Happy/7_bs_bir_iki.wav", ("turev-db", "turev-db_bs", "", "happy")),
        ("sound source/sad/99_KZ_x.wav", ("turev-db", "turev-db_kz", "", "sad")),
        ("Sound Source/Happy/3_ab2_x.wav", ("turev-db", "turev-db_ab2", "", "happy")),
    ],
)
def test_turev(tmp_path, name, expected):
    assert meta(one(tmp_path, name)) == expected


def test_turev_names_outside_sound_source_fall_back_to_the_label_folder(tmp_path):
    assert meta(one(tmp_path, "Angry/1234_kz_word.wav")) == ("folders", "", "", "angry")


@pytest.mark.parametrize("name", ["Sound Source/Angry/kz_word.wav",
                                  "Sound Source/Bored/1_kz_word.wav",
                                  "Sound Source/Angry/1_kz.wav"])
def test_turev_lookalikes_are_not_turev(tmp_path, name):
    assert one(tmp_path, name).dataset != "turev-db"


# --- folder per label ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "folder, label",
    [("angry", "angry"), ("Anger", "angry"), ("disgust", "disgust"), ("disgusted", "disgust"),
     ("fear", "fearful"), ("FEARFUL", "fearful"), ("happy", "happy"), ("happiness", "happy"),
     ("joy", "happy"), ("neutral", "neutral"), ("sad", "sad"), ("sadness", "sad"),
     ("surprise", "surprised"), ("surprised", "surprised"), ("calm", "calm")],
)
def test_folder_per_label(tmp_path, folder, label):
    clip = one(tmp_path, f"{folder}/recording 1.wav")
    assert meta(clip) == ("folders", "", "", label)
    assert math.isnan(clip.gender_value)


def test_file_name_beats_folder(tmp_path):
    assert meta(one(tmp_path, "sad/03-01-05-01-02-01-12.wav")) == (
        "ravdess", "ravdess_12", "female", "angry")


def test_only_the_immediate_parent_names_the_label(tmp_path):
    assert one(tmp_path, "happy/session1/clip.wav").dataset == "unlabelled"


def test_unlabelled(tmp_path):
    clip = one(tmp_path, "misc/clip.ogg")
    assert meta(clip) == ("unlabelled", "", "", "")
    assert math.isnan(clip.gender_value)


# --- folder scans -------------------------------------------------------------------------


def test_real_wav_file_and_upper_case_extension(tmp_path):
    soundfile.write(tmp_path / "03-01-03-01-01-01-02.WAV", np.zeros(160, np.float32), 16000)
    (clip,) = read_corpus(tmp_path)
    assert clip.label == "happy"
    assert soundfile.info(clip.path).samplerate == 16000


def test_non_ascii_names(tmp_path):
    touch(tmp_path, "überraschung/äöü.wav", "colère/é.flac", "悲しい/一.wav", "happy/日本.wav")
    corpus = scan(tmp_path)
    by_name = {os.path.basename(c.path): c for c in corpus.clips}
    assert set(by_name) == {"äöü.wav", "é.flac", "一.wav", "日本.wav"}
    assert by_name["日本.wav"].label == "happy"
    assert by_name["äöü.wav"].dataset == "unlabelled"
    assert corpus.ignored == []


def test_order_is_sorted_by_relative_path_and_deterministic(tmp_path):
    names = ["b/2.wav", "a/z.wav", "a/b/1.wav", "c.wav", "a.wav", "B/x.wav"]
    touch(tmp_path, *names)
    clips = read_corpus(tmp_path)
    rel = [Path(c.path).relative_to(tmp_path).as_posix() for c in clips]
    assert rel == sorted(names)
    assert read_corpus(tmp_path) == clips


def test_paths_are_absolute_even_for_relative_sources(tmp_path, monkeypatch):
    touch(tmp_path, "data/happy/x.wav")
    monkeypatch.chdir(tmp_path)
    (clip,) = read_corpus("data")
    assert os.path.isabs(clip.path)
    assert clip.path == str(tmp_path / "data" / "happy" / "x.wav")
    monkeypatch.chdir("/")
    assert os.path.exists(clip.path)


def test_non_audio_and_hidden_files_are_listed_not_returned(tmp_path):
    touch(tmp_path, "happy/a.wav", "happy/notes.txt", "labels.csv", "meta.json", "raw.raw",
          ".DS_Store", "happy/._a.wav", ".git/objects/x.wav", "sad/.cache/b.wav", "sad/b.Flac")
    corpus = scan(tmp_path)
    assert isinstance(corpus, Corpus)
    assert [Path(c.path).relative_to(tmp_path).as_posix() for c in corpus.clips] == [
        "happy/a.wav", "sad/b.Flac"]
    assert corpus.ignored == sorted([
        ".DS_Store", ".git/", "happy/._a.wav", "happy/notes.txt", "labels.csv", "meta.json",
        "raw.raw", "sad/.cache/"])
    assert read_corpus(tmp_path) == corpus.clips


def test_symlinked_folders_are_followed_once_and_loops_are_listed(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    touch(elsewhere, "angry/x.wav")
    root = tmp_path / "corpus"
    touch(root, "sad/a.wav")
    os.symlink(elsewhere / "angry", root / "angry")  # a label folder kept on another disk
    os.symlink(root / "sad", root / "sad_again")  # a second way to the same folder
    os.symlink(root, root / "sad" / "loop")  # back to the top
    corpus = scan(root)
    assert [(os.path.relpath(c.path, root), c.label) for c in corpus.clips] == [
        ("angry/x.wav", "angry"), ("sad/a.wav", "sad")]
    assert corpus.ignored == ["sad/loop/", "sad_again/"]


def test_single_audio_file(tmp_path):
    (path,) = touch(tmp_path, "DC/sa03.wav")
    corpus = scan(path)
    assert corpus.ignored == []
    assert [meta(c) for c in corpus.clips] == [("savee", "savee_DC", "male", "sad")]
    assert corpus.clips == [parse_path(path)]


def test_parse_path_takes_gender_tables(tmp_path):
    clip = parse_path(tmp_path / "1005_DFA_FEA_XX.wav", {"crema-d": {"1005": "female"}})
    assert meta(clip) == ("crema-d", "crema-d_1005", "female", "fearful")
    assert clip.gender_value == 0.0
    clip = parse_path(tmp_path / "KS0_fear_3.wav", {"nemo": {"KS0": "male"}})
    assert meta(clip) == ("nemo", "nemo_KS0", "male", "fearful")


def test_gender_value():
    assert Clip("/a.wav", "manifest", "", "male", "").gender_value == 1.0
    assert Clip("/a.wav", "manifest", "", "female", "").gender_value == 0.0
    assert math.isnan(Clip("/a.wav", "manifest", "", "", "").gender_value)


def test_speakers_of_different_corpora_never_collide(tmp_path):
    touch(tmp_path, "03-01-01-01-01-01-01.wav", "1001_DFA_ANG_XX.wav", "OAF_back_angry.wav",
          "DC_a01.wav", "EB0_anger_1.wav", "a5-01-01-01-01.wav", "03a01Wa.wav",
          "rab-f1-b1.wav", "Angry/SM1_F1_A01.wav", "Sound Source/Sad/1_kz_a.wav")
    clips = read_corpus(tmp_path)
    assert len({c.speaker for c in clips}) == 10
    assert len({c.dataset for c in clips}) == 10
    assert all(c.speaker.startswith(c.dataset + "_") for c in clips)


# --- manifests ----------------------------------------------------------------------------


def write_manifest(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_manifest_relative_and_absolute_paths_in_order(tmp_path):
    elsewhere = tmp_path / "elsewhere" / "z.wav"
    manifest = write_manifest(
        tmp_path / "lists" / "list.csv",
        "path,label,speaker,gender,notes\n"
        "clips/b.wav,Happy,spk1,male,first\n"
        f"{elsewhere},anger,spk2,F,\n"
        "../a.wav,,,,\n"
        "c.wav,surprise,spk1,1\n"
        "d.wav,fearful,,0,extra,columns\n",
    )
    clips = read_corpus(manifest)
    assert [c.path for c in clips] == [
        str(tmp_path / "lists" / "clips" / "b.wav"), str(elsewhere), str(tmp_path / "a.wav"),
        str(tmp_path / "lists" / "c.wav"), str(tmp_path / "lists" / "d.wav")]
    assert [meta(c) for c in clips] == [
        ("manifest", "list_spk1", "male", "happy"),
        ("manifest", "list_spk2", "female", "angry"),
        ("manifest", "", "", ""),
        ("manifest", "list_spk1", "male", "surprised"),
        ("manifest", "", "female", "fearful"),
    ]
    assert not any(os.path.exists(c.path) for c in clips)  # missing files are still listed
    assert scan(manifest).ignored == []


def test_manifest_speakers_are_prefixed_with_the_manifests_name(tmp_path):
    """Speaker "1" of two manifests is two speakers (it would leak across folds)."""
    write_manifest(tmp_path / "nemo" / "manifest.csv",
                   "path,label,speaker\na.wav,sad,nemo-EB0\nb.wav,sad,NEMO_EB1\nc.wav,sad,1\n"
                   "d.wav,sad,\n")
    write_manifest(tmp_path / "lists" / "day2.csv", "path,speaker\ne.wav,1\nf.wav,nemo-EB0\n")
    first = read_corpus(tmp_path / "nemo" / "manifest.csv")
    second = read_corpus(tmp_path / "lists" / "day2.csv")
    assert [c.speaker for c in first] == ["nemo-EB0", "NEMO_EB1", "nemo_1", ""]
    assert [c.speaker for c in second] == ["day2_1", "day2_nemo-EB0"]
    assert {c.dataset for c in first + second} == {"manifest"}


@pytest.mark.parametrize("url", ["http://example.com/a.wav", "https://h/a.wav",
                                 "ftp://h/a.wav", "sftp://h/a.wav", "zip://a.wav::file:///z.zip"])
def test_manifest_urls_of_other_protocols_are_refused(tmp_path, monkeypatch, url):
    manifest = write_manifest(tmp_path / "m.csv", f"path\ns3://bucket/a.wav\n{url}\n")
    with pytest.raises(CorpusError, match=r"line 3: .*protocol '\w+' is not allowed") as err:
        read_corpus(manifest)
    assert "\n" not in str(err.value) and "SERFAST_URL_PROTOCOLS" in str(err.value)
    protocol = url.split(":", 1)[0]
    monkeypatch.setenv("SERFAST_URL_PROTOCOLS", f"{protocol}, file")
    assert [c.path for c in read_corpus(manifest)] == ["s3://bucket/a.wav", url]


def test_manifest_urls_of_local_files_and_object_stores_are_kept(tmp_path):
    urls = ["file:///x/a.wav", "memory://b/a.wav", "s3://b/a.wav", "gs://b/a.wav",
            "gcs://b/a.wav", "az://c/a.wav", "abfs://c/a.wav"]
    manifest = write_manifest(tmp_path / "m.csv", "path\n" + "\n".join(urls) + "\n")
    assert [c.path for c in read_corpus(manifest)] == urls


def test_manifest_with_only_a_path_column(tmp_path):
    manifest = write_manifest(tmp_path / "m.CSV", "\ufeff Path \nx.wav\n")
    assert [meta(c) for c in read_corpus(manifest)] == [("manifest", "", "", "")]


def test_manifest_from_relative_source(tmp_path, monkeypatch):
    write_manifest(tmp_path / "m.csv", "path,label\nx.wav,sad\n")
    monkeypatch.chdir(tmp_path)
    (clip,) = read_corpus("m.csv")
    assert clip.path == str(tmp_path / "x.wav")


@pytest.mark.parametrize(
    "text, match",
    [
        ("path,label\na.wav,happy\nb.wav,bored\n", r"line 3: unknown label 'bored'"),
        ("path,gender\na.wav,x\n", r"line 2: unknown gender 'x'"),
        ("path,gender\na.wav,2\n", r"line 2: unknown gender '2'"),
        ("path,label\n,happy\n", r"line 2: empty path"),
        ("file,label\na.wav,happy\n", r"no 'path' column"),
        ("", r"no 'path' column"),
        ("path,label\n", r"lists no clips"),
    ],
)
def test_manifest_errors(tmp_path, text, match):
    manifest = write_manifest(tmp_path / "m.csv", text)
    with pytest.raises(CorpusError, match=match) as error:
        read_corpus(manifest)
    assert "\n" not in str(error.value)
    assert isinstance(error.value, ValueError)


# --- errors -------------------------------------------------------------------------------


def test_missing_source(tmp_path):
    with pytest.raises(CorpusError, match="not found"):
        read_corpus(tmp_path / "nope")


def test_empty_folder(tmp_path):
    with pytest.raises(CorpusError, match=r"no audio files .*\(0 non-audio files"):
        read_corpus(tmp_path)


def test_folder_without_audio_counts_what_it_saw(tmp_path):
    touch(tmp_path, "a.txt", "b/c.json", "d.csv", ".hidden.wav")
    with pytest.raises(CorpusError, match=r"3 non-audio files, 1 hidden") as error:
        read_corpus(tmp_path)
    assert "\n" not in str(error.value)


def test_single_non_audio_file(tmp_path):
    (path,) = touch(tmp_path, "notes.txt")
    with pytest.raises(CorpusError, match="not an audio file"):
        read_corpus(path)


# --- the real corpus ----------------------------------------------------------------------


@pytest.mark.skipif(not RAVDESS.is_dir(), reason=f"RAVDESS corpus not found at {RAVDESS}")
def test_real_ravdess():
    corpus = scan(RAVDESS)
    clips = corpus.clips
    assert len(clips) == 1200
    assert corpus.ignored == []
    assert {c.dataset for c in clips} == {"ravdess"}
    assert len({c.speaker for c in clips}) == 20
    assert set(Counter(c.speaker for c in clips).values()) == {60}
    assert {c.label for c in clips} == set(EMOTIONS)
    for clip in clips:
        actor = int(Path(clip.path).stem.split("-")[6])
        assert clip.speaker == f"ravdess_{actor:02d}"
        assert clip.gender == ("male" if actor % 2 else "female")
        assert Path(clip.path).parent.name == f"Actor_{actor:02d}"
        assert os.path.isabs(clip.path)
    assert [c.path for c in clips] == sorted(c.path for c in clips)


def _manifest_meta(folder: Path) -> dict[str, tuple[str, str, str]]:
    """path -> (label, speaker without its prefix, gender) of a shared corpus's manifest."""
    return {c.path: (c.label, c.speaker.split("-", 1)[1], c.gender)
            for c in read_manifest(folder / "manifest.csv")}


@pytest.mark.parametrize("name, dataset, has_gender", [
    ("nemo", "nemo", False), ("ased", "ased", True), ("tess", "tess", True),
    ("savee", "savee", True)])
def test_real_corpora_names_agree_with_their_manifests(name, dataset, has_gender):
    folder = CORPORA / name
    if not (folder / "manifest.csv").is_file():
        pytest.skip(f"{name} corpus not found at {folder}")
    corpus = scan(folder)
    expected = _manifest_meta(folder)
    assert {c.path for c in corpus.clips} == set(expected)
    assert {c.dataset for c in corpus.clips} == {dataset}
    assert corpus.notes == []
    for clip in corpus.clips:
        label, speaker, gender = expected[clip.path]
        assert clip.label == label
        assert clip.speaker == f"{dataset}_{speaker}"
        assert clip.gender == (gender if has_gender else "")  # nEMO's data.tsv is not there
