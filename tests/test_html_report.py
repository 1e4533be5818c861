"""The archive report: data read from predict's CSVs, and the page in headless Chromium."""

import csv
import json
import os
import re
import shutil
import subprocess
import urllib.parse
from html.parser import HTMLParser

import numpy as np
import pytest
import soundfile as sf

from serfast.calls.html_report import (ReportError, audio_href, channel_titles, display_names,
                                       find_outputs, negative_runs, pack_windows,
                                       read_results, unpack_windows, write_report)
from serfast.calls.labels import label_fields, summary_fields
from serfast.io.csv_cells import read_cell, safe_row

LABELS = ["neutral", "happy", "sad", "angry"]
NEG = [False, False, True, True]
#: File names a page must show as text: markup, and a spreadsheet formula.
SCRIPT_DIR, SCRIPT_FILE = "<script>alert(1)<", "script>.wav"
FORMULA = '=HYPERLINK("evil.example","x").wav'


def _windows(rng, seconds, dominant):
    """Windows of 2.5 s every 1.25 s over two speech turns, ``dominant`` mostly on top."""
    starts = np.concatenate([np.arange(1.0, 9.0, 1.25), np.arange(12.0, seconds - 3, 1.25)])
    probs = rng.dirichlet(np.ones(len(LABELS)), len(starts))
    probs[: len(starts) // 2, LABELS.index(dominant)] += 1.5
    probs /= probs.sum(axis=1, keepdims=True)
    return starts, starts + 2.5, probs


def write_results(folder, labels_name="labels.csv", summary_name="summary.csv"):
    """labels and summary CSVs as predict writes them for four calls in ``folder``/audio
    (one with an unreadable file); the audio files are real stereo WAVs."""
    rng = np.random.default_rng(7)
    audio = folder / "audio"
    (audio / SCRIPT_DIR).mkdir(parents=True, exist_ok=True)
    files = [audio / "call one.wav", audio / SCRIPT_DIR / SCRIPT_FILE, audio / FORMULA,
             audio / "broken.wav"]
    for f in files[:3]:
        sf.write(str(f), 0.01 * rng.standard_normal((8000 * 30, 2)), 8000, subtype="PCM_16")
    files[3].write_bytes(b"not audio")
    with open(folder / labels_name, "w", newline="") as lf, \
            open(folder / summary_name, "w", newline="") as sf_:
        lw, sw = SafeWriter(lf), SafeWriter(sf_)
        lw.writerow(label_fields(LABELS))
        sw.writerow(summary_fields(LABELS))
        for i, f in enumerate(files[:3]):
            for ch, dominant in ((0, LABELS[i]), (1, LABELS[3 - i])):
                s, e, p = _windows(rng, 30.0, dominant)
                lw.writerows([str(f), ch, f"{a:.3f}", f"{b:.3f}", LABELS[q.argmax()],
                              f"{q.max():.4f}"] + [f"{v:.4f}" for v in q] + [""]
                             for a, b, q in zip(s, e, p))
                shares = rng.dirichlet(np.ones(len(LABELS)))
                neg = ["", "", ""] if (i, ch) == (0, 0) else \
                    [f"{2.0 + i:.2f}", f"{9.0 + ch:.2f}", f"{0.6 + 0.1 * i + 0.05 * ch:.4f}"]
                sw.writerow([str(f), ch, "30.000", f"{20.0 + i + ch:.3f}", "0.000", len(s),
                             LABELS[int(shares.argmax())]] + [f"{x:.4f}" for x in shares]
                            + neg + [""])
        err = f"{files[3]}: not a readable audio file"
        lw.writerow([str(files[3]), "", "", "", "", ""] + [""] * len(LABELS) + [err])
        sw.writerow([str(files[3]), "", "", "", "", "", ""] + [""] * len(LABELS)
                    + ["", "", "", err])
    return folder / labels_name, [str(f) for f in files]


class SafeWriter:
    """A csv writer whose text cells are spreadsheet-safe, as predict writes them."""

    def __init__(self, fh):
        self.writer = csv.writer(fh)

    def writerow(self, row):
        self.writer.writerow(safe_row(row))

    def writerows(self, rows):
        for row in rows:
            self.writerow(row)


def read_csv(path):
    """Rows of a CSV as dicts, cells read back as :func:`read_cell` reads them."""
    with open(path, newline="") as fh:
        return [{k: read_cell(v) for k, v in row.items()} for row in csv.DictReader(fh)]


@pytest.fixture
def results(tmp_path):
    return write_results(tmp_path)


# ---- without a browser ----

def test_find_outputs_by_columns_and_names(tmp_path):
    labels, _ = write_results(tmp_path / "a")
    assert find_outputs(str(tmp_path / "a")) == find_outputs(str(labels))
    assert find_outputs(str(labels)).summary == str(tmp_path / "a" / "summary.csv")
    day1, _ = write_results(tmp_path / "b", "day1.csv", "day1.summary.csv")
    shutil.copy(tmp_path / "a" / "summary.csv", tmp_path / "b" / "summary.csv")
    assert find_outputs(str(day1)).summary == str(tmp_path / "b" / "day1.summary.csv")
    with pytest.raises(ReportError, match="2 labels CSVs"):
        shutil.copy(labels, tmp_path / "b" / "other.csv")
        find_outputs(str(tmp_path / "b"))
    os.remove(tmp_path / "a" / "summary.csv")
    with pytest.raises(ReportError, match="no summary CSV of serfast predict beside"):
        find_outputs(str(labels))
    with pytest.raises(ReportError, match="not a labels CSV"):
        find_outputs(str(tmp_path / "b" / "day1.summary.csv"))


def test_windows_pack_to_centiseconds_and_bytes():
    rng = np.random.default_rng(0)
    starts = np.sort(rng.uniform(0, 7200, 500)).round(3)
    probs = rng.dirichlet(np.ones(6), 500)
    s, e, p = unpack_windows(pack_windows(starts, starts + 2.5, probs), 6)
    assert np.abs(s - starts).max() <= 0.005 + 1e-9
    assert np.abs(e - s - 2.5).max() < 1e-9
    assert np.abs(p - probs).max() <= 0.5 / 255 + 1e-9


def test_negative_runs_merge_touching_negative_windows():
    starts = np.array([0.0, 1.25, 2.5, 6.0, 7.25, 20.0])
    probs = np.array([[0.1, 0, 0.5, 0.4], [0, 0, 0.2, 0.8], [0.9, 0, 0.1, 0],
                      [0, 0, 0.7, 0.1], [0.1, 0, 0, 0.9], [0, 0, 0, 1.0]])
    runs = negative_runs(starts, starts + 2.5, probs, LABELS)
    assert [(a, b) for a, b, _ in runs] == [(0.0, 3.75), (6.0, 9.75), (20.0, 22.5)]
    assert runs[0][2] == pytest.approx(0.95) and runs[1][2] == pytest.approx(0.85)


def test_read_results_matches_the_csvs(results, tmp_path):
    labels, files = results
    data = read_results(find_outputs(str(labels)), str(tmp_path / "out" / "r.html"),
                        ("agent", "client"))
    assert data["labels"] == LABELS
    assert data["channels"] == {"0": "agent", "1": "client", "": "file"}
    assert [c["file"] for c in data["calls"]] == files
    rows = [r for r in read_csv(labels) if not r["error"]]
    assert data["windows"] == len(rows)
    ch = data["calls"][1]["channels"][1]
    mine = [r for r in rows if r["file"] == files[1] and r["channel"] == "1"]
    s, e, p = unpack_windows(ch["packed"], len(LABELS))
    assert np.allclose(s, [float(r["start"]) for r in mine], atol=0.005)
    assert np.allclose(p, [[float(r[f"p_{x}"]) for x in LABELS] for r in mine], atol=0.002)
    assert data["calls"][1]["audio"] == "../audio/" + urllib.parse.quote(SCRIPT_DIR) + "/" \
        + urllib.parse.quote(SCRIPT_FILE)
    assert data["calls"][3]["channels"][0]["error"].endswith("not a readable audio file")
    assert data["calls"][0]["channels"][0]["negative"] is None
    assert data["calls"][2]["channels"][1]["negative"] == [4.0, 10.0, 0.85]


def test_display_names_tell_files_of_the_same_name_apart():
    assert display_names(["/a/x/1.wav", "/a/y/2.wav"]) == {"/a/x/1.wav": "1.wav",
                                                           "/a/y/2.wav": "2.wav"}
    assert display_names(["/a/x/1.wav", "/a/y/1.wav", "/a/y/z/2.wav"]) == {
        "/a/x/1.wav": "x/1.wav", "/a/y/1.wav": "y/1.wav", "/a/y/z/2.wav": "y/z/2.wav"}
    assert display_names(["s3://b/x/1.wav", "/a/1.wav"]) == {"s3://b/x/1.wav": "s3://b/x/1.wav",
                                                             "/a/1.wav": "1.wav"}


def test_channel_titles():
    assert channel_titles(["0", "1", "2", "mix", ""]) == {
        "0": "agent", "1": "customer", "2": "channel 2", "mix": "mix", "": "file"}
    assert channel_titles(["0", "1"], ("rep",)) == {"0": "rep", "1": "channel 1"}
    assert channel_titles(["0"]) == {"0": "speaker"}  # mono recordings
    assert channel_titles(["0"], ("rep",)) == {"0": "rep"}


def test_audio_href_is_relative_to_the_page(tmp_path):
    assert audio_href(str(tmp_path / "a b" / "c#1.wav"), str(tmp_path / "r.html")) == \
        "a%20b/c%231.wav"
    assert audio_href(str(tmp_path / "c.wav"), str(tmp_path / "x" / "y" / "r.html")) == \
        "../../c.wav"


def test_page_embeds_names_as_data_only_and_overwrites_only_reports(results, tmp_path):
    labels, _ = results
    page = tmp_path / "report.html"
    info = write_report(str(labels), str(page))
    text = page.read_text()
    assert info.calls == 4 and info.bytes == len(text.encode())
    assert text.lower().count("<script") == 2 and text.lower().count("</script") == 2
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    write_report(str(labels), str(page), title="<b>{{data}}</b>")  # its own page is replaced
    assert "<title>&lt;b&gt;{{data}}&lt;/b&gt;</title>" in page.read_text()
    other = tmp_path / "notes.html"
    other.write_text("<html>mine</html>")
    with pytest.raises(ReportError, match="is not a serfast report"):
        write_report(str(labels), str(other))
    assert other.read_text() == "<html>mine</html>"
    missing = tmp_path / "no_such_folder"
    with pytest.raises(ReportError, match=f"folder {missing} does not exist"):
        write_report(str(labels), str(missing / "report.html"))
    assert not missing.exists()


def test_cli_report_and_one_line_errors(results, tmp_path):
    from click.testing import CliRunner

    from serfast_cli.main import main

    labels, _ = results
    page = tmp_path / "out.html"
    run = CliRunner().invoke(main, ["report", str(labels.parent), "--html", str(page),
                                    "--channels", "rep, caller"])
    assert run.exit_code == 0, run.output
    assert "report of 4 calls" in run.output and page.exists()
    assert '"0":"rep","1":"caller"' in page.read_text()
    os.remove(labels.parent / "summary.csv")
    bad = CliRunner().invoke(main, ["report", str(labels), "--html", str(page)])
    assert bad.exit_code == 1 and bad.output.count("\n") == 1 and "no summary" in bad.output


# ---- in a real browser ----

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") \
    or shutil.which("google-chrome")
browser = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: the page is "
                             "not rendered (Debian: apt-get install chromium)")

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
        "source", "track", "wbr"}


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children, self.texts = tag, attrs, parent, [], []

    def text(self):
        return "".join(t if isinstance(t, str) else t.text() for t in self.texts)

    def all(self, tag=None, **attrs):
        out = []
        for c in self.children:
            if (tag is None or c.tag == tag) and all(
                    (v in (c.attrs.get(k.rstrip("_")) or "").split()) if k == "class_"
                    else c.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items()):
                out.append(c)
            out += c.all(tag, **attrs)
        return out

    def one(self, tag=None, **attrs):
        found = self.all(tag, **attrs)
        assert len(found) == 1, (tag, attrs, len(found))
        return found[0]


class Tree(HTMLParser):
    """The dumped DOM as a tree of Nodes (tag, attrs, children, text)."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.root = self.node = Node("#root", {}, None)
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        n = Node(tag, dict(attrs), self.node)
        self.node.children.append(n)
        self.node.texts.append(n)
        if tag not in VOID:
            self.node = n

    def handle_endtag(self, tag):
        n = self.node
        while n is not self.root and n.tag != tag:
            n = n.parent
        if n is not self.root:
            self.node = n.parent

    def handle_data(self, data):
        self.node.texts.append(data)


def render(page, fragment="", probe=""):
    """The DOM of ``page`` after its scripts ran in headless Chromium; ``probe``, a script
    run after the page's own, leaves its findings in ``<pre id="probe">``."""
    if probe:
        text = page.read_text().replace("</body>", f"<script>{probe}</script></body>")
        page = page.with_name("probe-" + page.name)
        page.write_text(text)
    profile = page.parent / "chromium-profile"
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={profile}", "--virtual-time-budget=3000",
         "--window-size=1280,1600", "--dump-dom", page.as_uri() + fragment],
        capture_output=True, text=True, timeout=120)
    assert "<html" in out.stdout, out.stderr[-2000:]
    return Tree(out.stdout).root


def weighted_shares(summary, channel):
    """Archive share of each emotion on ``channel``, weighted by speech seconds."""
    rows = [r for r in summary if r["channel"] == channel and not r["error"]]
    speech = np.array([float(r["speech_seconds"]) for r in rows])
    shares = np.array([[float(r[f"share_{e}"]) for e in LABELS] for r in rows])
    return speech @ shares / speech.sum()


@browser
def test_overview_and_table_in_chromium(results):
    labels, files = results
    page = labels.parent / "out" / "report.html"
    page.parent.mkdir()
    write_report(str(labels), str(page))
    summary = read_csv(labels.parent / "summary.csv")
    dom = render(page)
    assert dom.one(id="n-calls").one("b").text() == "4"
    speech = sum(float(r["speech_seconds"] or 0) for r in summary)
    assert dom.one(id="n-speech").one("b").text() == f"{speech / 3600:.2f}"
    for channel in ("0", "1"):
        bar = dom.one("svg", class_="sharebar", data_channel=channel)
        got = {r.attrs["data-emotion"]: float(r.attrs["data-share"]) for r in bar.all("rect")}
        assert np.allclose([got[e] for e in LABELS], weighted_shares(summary, channel),
                           atol=1e-4)
        assert len(dom.one("svg", class_="trend", data_channel=channel).all("rect")) >= 3
    # default order: most negative stretch first; the failed file last
    worst = {}
    for r in summary:
        if r["negative_score"]:
            worst[r["file"]] = max(worst.get(r["file"], 0), float(r["negative_score"]))
    expected = sorted(range(4), key=lambda i: -worst.get(files[i], -1))
    rows = dom.one("tbody", id="rows").all("tr")
    assert [int(tr.attrs["data-call"]) - 1 for tr in rows] == expected
    names = [tr.one("td", data_key="file").text() for tr in rows]
    assert sorted(names) == sorted(os.path.basename(f) for f in files)
    assert SCRIPT_FILE in names and FORMULA in names  # shown as text...
    assert len(dom.all("script")) == 2  # ...never run as markup
    assert "not a readable audio file" in rows[-1].one("td", data_key="err").text()
    assert dom.one("a", id="download").attrs["href"] == "#"  # made when it is used:
    probe = "document.getElementById('download').dispatchEvent(new Event('focus'));"
    href = render(page, "", probe).one("a", id="download").attrs["href"]
    table = list(csv.reader(urllib.parse.unquote(href.split(",", 1)[1]).splitlines()))
    assert [r[1] for r in table[1:]] == [files[i] for i in expected]
    names = [os.path.basename(files[i]) for i in expected]
    assert [r[0] for r in table[1:]] == [("'" + n if n.startswith("=") else n) for n in names]
    assert "'" + FORMULA in [r[0] for r in table]


PROBE = """
const out = {}, rows = () => [...document.querySelectorAll('#rows tr')].map(
  tr => +tr.getAttribute('data-call'));
const set = (id, v, ev) => { const e = document.getElementById(id); e.value = v;
  e.dispatchEvent(new Event(ev)); };
document.querySelector('th[data-key=file]').click(); out.byName = rows();
set('shareOf', '3', 'change');
document.querySelector('th[data-key="share-1"]').click(); out.byAngerCustomer = rows();
out.shareHead = document.querySelector('th[data-key="share-1"]').textContent;
set('dominant', 'sad', 'change'); out.sadAnywhere = rows();
set('dominantChannel', '0', 'change'); out.sadAgent = rows();
set('dominant', '', 'change'); set('q', 'hyperlink', 'input'); out.search = rows();
set('q', '', 'input'); set('minNeg', '0.72', 'input'); out.minNeg = rows();
const svg = document.querySelector('svg.area[data-channel="1"]'), box = svg.getBoundingClientRect();
svg.dispatchEvent(new MouseEvent('click', {clientX: box.left + 0.25 * box.width,
  clientY: box.top + 10, bubbles: true}));
out.clickedAt = document.querySelector('audio').currentTime;
out.from = document.getElementById('from').textContent;
const pre = document.createElement('pre'); pre.id = 'probe';
pre.textContent = JSON.stringify(out); document.body.append(pre);
"""


@browser
def test_sorting_filtering_and_seeking_in_chromium(results):
    labels, files = results
    page = labels.parent / "report.html"
    write_report(str(labels), str(page))
    summary = read_csv(labels.parent / "summary.csv")
    probe = json.loads(render(page, "#call-2", PROBE).one(id="probe").text())
    by_name = sorted(range(4), key=lambda i: os.path.basename(files[i]).lower())
    assert probe["byName"] == [i + 1 for i in by_name]
    anger = {r["file"]: float(r["share_angry"]) for r in summary if r["channel"] == "1"}
    assert probe["byAngerCustomer"] == [i + 1 for i in sorted(
        range(4), key=lambda i: -anger.get(files[i], -1))]
    assert probe["shareHead"] == "Share of angry, customer"

    def dominated(channels):
        return {files.index(r["file"]) + 1 for r in summary
                if r["dominant"] == "sad" and r["channel"] in channels}
    assert set(probe["sadAnywhere"]) == dominated({"0", "1"})
    assert set(probe["sadAgent"]) == dominated({"0"})
    assert probe["search"] == [3]
    assert set(probe["minNeg"]) == {files.index(r["file"]) + 1 for r in summary
                                    if r["negative_score"]
                                    and float(r["negative_score"]) >= 0.72}
    assert probe["clickedAt"] == pytest.approx(0.25 * 30.0, abs=0.3)
    assert probe["from"] == "playing from 0:07"


@browser
def test_call_timelines_stretches_and_player_in_chromium(results):
    labels, files = results
    page = labels.parent / "pages" / "report.html"
    page.parent.mkdir()
    write_report(str(labels), str(page))
    rows = read_csv(labels)
    summary = read_csv(labels.parent / "summary.csv")
    dom = render(page, "#call-2")
    call = dom.one("section", id="call-2")
    assert SCRIPT_FILE in call.one("h2").text() and not call.all("script")
    audio = call.one("audio")
    assert urllib.parse.unquote(audio.attrs["src"]) == os.path.relpath(files[1], page.parent)
    assert "<" not in audio.attrs["src"]
    assert call.one(id="from").attrs.get("data-audio") == "ready"  # the browser found it
    for channel in ("0", "1"):
        mine = [r for r in rows if r["file"] == files[1] and r["channel"] == channel]
        probs = np.array([[float(r[f"p_{e}"]) for e in LABELS] for r in mine])
        svg = call.one("svg", class_="area", data_channel=channel)
        assert int(svg.attrs["data-windows"]) == len(mine)
        mean = [float(x) for x in svg.attrs["data-mean"].split(",")]
        assert np.allclose(mean, probs.mean(axis=0), atol=1 / 255)
        assert [p.attrs["data-emotion"] for p in svg.all("polygon")] == LABELS
        # the stretches: summary's most negative one, then runs of negative windows
        row = next(r for r in summary if r["file"] == files[1] and r["channel"] == channel)
        items = call.one("ol", class_="stretches").all("li", data_channel=channel)
        got = [(float(li.attrs["data-start"]), float(li.attrs["data-end"]),
                float(li.attrs["data-negativity"])) for li in items]
        assert got[0] == (float(row["negative_start"]), float(row["negative_end"]),
                          float(row["negative_score"]))
        runs, run = [], []
        for r, p in zip(mine, probs):
            neg = NEG[int(p.argmax())]
            if run and (not neg or float(r["start"]) > run[-1][1]):
                runs.append(run)
                run = []
            if neg:
                run.append((float(r["start"]), float(r["end"]), p[2] + p[3]))
        runs += [run] if run else []
        runs = [x for x in runs if x[-1][1] <= got[0][0] or x[0][0] >= got[0][1]]
        longest = sorted(runs, key=lambda x: x[0][0] - x[-1][1])[:3]
        assert len(got) == 1 + len(longest)
        for (a, b, v), run in zip(got[1:], longest):
            assert a == pytest.approx(run[0][0], abs=0.01)
            assert b == pytest.approx(max(x[1] for x in run), abs=0.01)
            assert v == pytest.approx(np.mean([x[2] for x in run]), abs=2e-3)
        assert len(svg.all("rect", class_="negmark")) == len(got)
    broken = render(page, "#call-4").one("section", id="call-4")
    errors = [e.text() for e in broken.all("div", class_="error")]
    assert len(errors) == 2 and any("not a readable audio file" in e for e in errors)
    assert any(e.startswith("The browser cannot play ../audio/broken.wav") for e in errors)


def write_many(folder, n, name="c{:04d}.wav"):
    """labels and summary CSVs of ``n`` short calls (no audio, named ``name.format(i)``
    inside ``folder``, or as it is when it starts with a formula character), negativity
    rising with i."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    with open(folder / "labels.csv", "w", newline="") as lf, \
            open(folder / "summary.csv", "w", newline="") as sf_:
        lw, sw = SafeWriter(lf), SafeWriter(sf_)
        lw.writerow(label_fields(LABELS))
        sw.writerow(summary_fields(LABELS))
        for i in range(n):
            f = name.format(i) if name.startswith("=") else str(folder / name.format(i))
            for ch in (0, 1):
                p = rng.dirichlet(np.ones(len(LABELS)), 3)
                lw.writerows([f, ch, f"{t:.3f}", f"{t + 2.5:.3f}", LABELS[q.argmax()],
                              f"{q.max():.4f}"] + [f"{v:.4f}" for v in q] + [""]
                             for t, q in zip((1.0, 2.25, 3.5), p))
                sw.writerow([f, ch, "10.000", "5.000", "0.000", 3, "happy", "0.2500", "0.2500",
                             "0.2500", "0.2500", "1.00", "3.00", f"{0.5 + i / 1000:.4f}", ""])


@browser
def test_long_table_lists_pages_as_it_scrolls_and_sorts_all_calls(tmp_path):
    write_many(tmp_path, 450)
    page = tmp_path / "report.html"
    write_report(str(tmp_path), str(page))
    probe = """
    const out = {}, box = document.querySelector('.tablebox'), n = () => document.querySelectorAll('#rows tr').length;
    out.first = n(); out.count = document.getElementById('count').textContent;
    box.scrollTop = box.scrollHeight; box.dispatchEvent(new Event('scroll')); out.second = n();
    box.scrollTop = box.scrollHeight; box.dispatchEvent(new Event('scroll')); out.third = n();
    document.querySelector('th[data-key=neg]').click();
    out.least = document.querySelector('#rows tr').getAttribute('data-call'); out.after = n();
    const pre = document.createElement('pre'); pre.id = 'probe';
    pre.textContent = JSON.stringify(out); document.body.append(pre);
    """
    got = json.loads(render(page, "", probe).one(id="probe").text())
    assert (got["first"], got["second"], got["third"]) == (200, 400, 450)
    assert got["count"] == "450 of 450 calls (the first 200 listed; scroll the table for more)"
    assert (got["least"], got["after"]) == ("1", 200)  # sorted over all, listed from the top


def test_text_cells_are_read_back_as_predict_wrote_them(tmp_path):
    write_many(tmp_path, 2, "=HYPERLINK(1)-{}.wav")
    assert "'=HYPERLINK(1)-0.wav" in (tmp_path / "labels.csv").read_text()
    data = read_results(find_outputs(str(tmp_path)), str(tmp_path / "r.html"))
    assert [c["name"] for c in data["calls"]] == ["=HYPERLINK(1)-0.wav", "=HYPERLINK(1)-1.wav"]
    assert all(ch["packed"] for c in data["calls"] for ch in c["channels"])
