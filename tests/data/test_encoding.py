"""Not-UTF-8 data files: the error names the likely encoding, and its `iconv` command really converts the file."""

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hf_textgen.data import DataArguments, load_raw_datasets
from hf_textgen.data.encoding import guess_encoding, iconv_name
from hf_textgen.errors import UserError

FIXTURES = Path(__file__).parent / "fixtures"
FRENCH = (
    "Le garçon a mangé une crème brûlée à côté de la fenêtre. Déjà vu : très élégant, un café naïf.\n\n"
    "Il était une fois, dans un château près de la forêt, une reine qui s'appelait Hélène.\n"
)
JAPANESE = (
    "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。\n\n"
    "何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。\n"
)
CHINESE = (FIXTURES / "chinese.txt").read_text(encoding="utf-8")

# (text, how it is saved, the encoding the advice must name): each named encoding decodes the bytes exactly.
SAMPLES = {
    "gbk": (CHINESE, "gbk", "GB18030"),
    "shift_jis": (JAPANESE, "shift_jis", "CP932"),
    "latin1": (FRENCH, "latin-1", "CP1252"),
    "latin1_one_word": ("Caf\xe9 au lait\n", "latin-1", "CP1252"),
    # No BOM, and every other byte NUL: valid UTF-8 byte by byte, yet not text.
    "utf16le_ascii": ("The weather is fine today.\n\nIt rained all day yesterday.\n", "utf-16-le", "UTF-16LE"),
}


def _iconv_command(message: str) -> str:
    match = re.search(r"`(iconv [^`]+)`", message)
    assert match, message
    return match.group(1)


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_error_names_the_encoding_and_its_iconv_line_converts_the_file(tmp_path, sample):
    text, encoding, expected = SAMPLES[sample]
    path = tmp_path / f"{sample}.txt"
    path.write_bytes(text.encode(encoding))
    with pytest.raises(UserError) as raised:
        load_raw_datasets(DataArguments(train_file=[str(path)]))
    message = str(raised.value)
    assert "\n" not in message
    assert f"{path} is not UTF-8 text" in message
    assert f"it looks like {expected}" in message
    assert _iconv_command(message).startswith(f"iconv -f {expected} -t UTF-8 ")

    # Paste the command into a shell, as a user would: the converted file is the original text.
    subprocess.run(_iconv_command(message), shell=True, check=True, cwd=tmp_path)
    assert (tmp_path / f"{sample}.utf8.txt").read_text(encoding="utf-8") == text
    converted = DataArguments(train_file=[str(tmp_path / f"{sample}.utf8.txt")], sample_by="line")
    raw = load_raw_datasets(dataclasses.replace(converted, validation_file=converted.train_file[0]))
    assert raw["train"][0]["text"] == text.splitlines(keepends=True)[0]


def test_a_bad_byte_past_the_first_check_names_the_file_offset_and_encoding(tmp_path):
    # The first 64 kB are ASCII, so only datasets' own reading meets the GBK bytes.
    prefix = b"plain ascii text\n" * 5000
    path = tmp_path / "late gbk.txt"
    path.write_bytes(prefix + CHINESE.encode("gbk"))
    with pytest.raises(UserError) as raised:
        load_raw_datasets(DataArguments(train_file=[str(path)], validation_split_percentage=10))
    message = str(raised.value)
    assert f"{path} is not UTF-8 text (bad byte at offset {len(prefix)})" in message
    assert "it looks like GB18030" in message
    subprocess.run(_iconv_command(message), shell=True, check=True, cwd=tmp_path)
    converted = (tmp_path / "late gbk.utf8.txt").read_text(encoding="utf-8")
    assert converted == prefix.decode() + CHINESE


@pytest.mark.parametrize(
    ("text", "encoding", "expected"),
    [
        ("Привет, как дела? Это русский текст для проверки кодировки.\n" * 3, "cp1251", "CP1251"),
        ("Привет, как дела? Это русский текст для проверки кодировки.\n" * 3, "koi8_r", "KOI8-R"),
        (CHINESE, "utf-16", "UTF-16"),
        (CHINESE, "big5", "BIG5"),
    ],
)
def test_other_encodings_keep_their_own_name(text, encoding, expected):
    if encoding == "big5":
        # Big5 is traditional Chinese; the fixture is simplified, so keep the characters both scripts share.
        text = text.encode("big5", errors="ignore").decode("big5")
    assert guess_encoding(text.encode(encoding)) == expected


def test_a_probe_cut_inside_a_character_still_gets_a_guess():
    data = CHINESE.encode("gbk")
    assert guess_encoding(data[:1001]) == "GB18030"  # 1001 ends on the first byte of a two-byte character


def test_iconv_knows_every_name_we_print():
    iconv = shutil.which("iconv")
    assert iconv is not None, "iconv (glibc's libc-bin) is part of every Linux the project supports"
    listed = {
        name.strip().rstrip("/").upper()
        for name in subprocess.run([iconv, "-l"], capture_output=True, text=True, check=True)
        .stdout.replace(",", "\n")
        .split()
    }
    for codec in ("gb18030", "cp932", "cp1252", "latin_1", "utf_16", "utf_16_le", "koi8_r", "iso8859_15", "big5"):
        assert iconv_name(codec) in listed, codec
