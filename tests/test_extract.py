"""Tests for content extraction, on the repo's samples and on hand-made hostile files in tmp_path."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path

import pytest

from ai_employee.vault.extract import Extracted, describe, extract

SAMPLES = Path(__file__).parents[1] / "samples"
MiB = 1024 * 1024


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def make_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A minimal valid PDF with one line of Helvetica text per page (no parentheses in the text)."""
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 50 780 Td ({text}) Tj ET".encode()
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (5 + 2 * i)
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    info = ""
    if title is not None:
        objects.append(f"<< /Title ({title}) >>".encode())
        info = f" /Info {len(objects)} 0 R"
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def check_invariants(ex: Extracted, path: Path, max_preview_bytes: int = 65536) -> None:
    assert len(ex.preview.encode()) <= max_preview_bytes
    assert "\r" not in ex.preview
    assert ex.size_bytes == path.stat().st_size
    if ex.size_bytes < 10 * MiB:
        assert ex.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert describe(ex)
    for problem in ex.problems:
        assert "\n" not in problem and "\r" not in problem
    if ex.email is not None:
        for value in (ex.email.from_name, ex.email.from_addr, ex.email.subject, *ex.email.to):
            assert "\n" not in value and "\r" not in value


# --- the repo's samples -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "media_type", "in_preview", "line"),
    [
        ("README.md", "note", "text/markdown", "Sample inputs", "Markdown note, 306 B"),
        ("bank_transactions-2026-11.csv", "text", "text/csv", "STRIPE PAYOUT", "CSV file, 386 B"),
        (
            "client-quote-request.eml",
            "email",
            "message/rfc822",
            "María López",
            "email from Maria Lopez <maria@brightpath-design.co>",
        ),
        ("invoice-acme-INV-2291.txt", "text", "text/plain", "TOTAL:     £546.00", "text file, 1011 B"),
        ("invoice-northwind-NW-7731.pdf", "pdf", "application/pdf", "TOTAL DUE: EUR 1,290.00", "PDF, 1 page"),
        ("meeting_request.txt", "text", "text/plain", "Q1 roadmap", "text file, 133 B"),
        (
            "newsletter-weekly-digest.eml",
            "email",
            "message/rfc822",
            "calendar app",
            "email from Product Weekly <no-reply@news.productweekly.io>",
        ),
        ("q4-numbers-for-board.md", "note", "text/markdown", "£182k", "note from Dana Whitfield"),
        ("whiteboard-photo.png", "binary", "image/png", "", "PNG image, 1.1 KiB"),
    ],
)
def test_samples(name: str, kind: str, media_type: str, in_preview: str, line: str) -> None:
    path = SAMPLES / name
    ex = extract(path)
    check_invariants(ex, path)
    assert (ex.kind, ex.media_type) == (kind, media_type)
    assert in_preview in ex.preview
    assert describe(ex).startswith(line)
    assert ex.problems == []
    assert not ex.truncated


def test_sample_quote_request_email_fields() -> None:
    ex = extract(SAMPLES / "client-quote-request.eml")
    assert ex.email is not None
    assert ex.email.from_name == "Maria Lopez"
    assert ex.email.from_addr == "maria@brightpath-design.co"
    assert ex.email.to == ["hello@example-studio.com"]
    assert ex.email.date == "2026-11-16T09:14:22+01:00"
    assert ex.email.message_id == "<CAF3x9Q2k1@mail.brightpath-design.co>"
    assert ex.title == "Quote request: website redesign for BrightPath (deadline Dec 12)"


def test_sample_newsletter_prefers_plain_text_part() -> None:
    ex = extract(SAMPLES / "newsletter-weekly-digest.eml")
    assert "<b>" not in ex.preview and "Read online:" in ex.preview


def test_sample_note_with_email_frontmatter() -> None:
    ex = extract(SAMPLES / "q4-numbers-for-board.md")
    assert ex.frontmatter["tags"] == "finance, board"
    assert ex.email is not None
    assert (ex.email.from_name, ex.email.from_addr) == ("Dana Whitfield", "dana@example-studio.com")
    assert ex.title == ex.email.subject == "Q4 numbers: need the summary before Thursday's board call"
    assert not ex.preview.startswith("---")


# --- plain files and text decoding -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["empty.txt", "empty.md", "empty.eml", "empty.pdf", "empty"])
def test_zero_byte_file(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, name, b"")
    ex = extract(path)
    check_invariants(ex, path)
    assert ex.kind == "empty"
    assert ex.sha256 == hashlib.sha256(b"").hexdigest()
    assert (ex.preview, ex.truncated, ex.title, ex.email) == ("", False, None, None)
    assert describe(ex) == "empty file"


def test_binary_junk_named_md(tmp_path: Path) -> None:
    path = write(tmp_path, "notes.md", bytes(range(256)) * 64)
    ex = extract(path)
    check_invariants(ex, path)
    assert (ex.kind, ex.media_type, ex.preview) == ("binary", "application/octet-stream", "")
    assert any(".md suffix" in p for p in ex.problems)


def test_control_character_junk_without_nul_is_binary(tmp_path: Path) -> None:
    path = write(tmp_path, "junk.txt", bytes(range(1, 32)) * 100)
    assert extract(path).kind == "binary"


def test_png_named_txt_is_sniffed(tmp_path: Path) -> None:
    path = write(tmp_path, "photo.txt", b"\x89PNG\r\n\x1a\n" + bytes(200))
    ex = extract(path)
    assert (ex.kind, ex.media_type) == ("binary", "image/png")
    assert ex.problems


def test_text_named_pdf_is_text(tmp_path: Path) -> None:
    path = write(tmp_path, "invoice.pdf", "not a PDF at all\n")
    ex = extract(path)
    assert (ex.kind, ex.media_type) == ("text", "text/plain")
    assert any("does not match" in p for p in ex.problems)


def test_zip_container_keeps_specific_type(tmp_path: Path) -> None:
    ex = extract(write(tmp_path, "report.docx", b"PK\x03\x04" + bytes(100)))
    assert ex.kind == "binary" and "wordprocessingml" in ex.media_type
    assert extract(write(tmp_path, "archive", b"PK\x03\x04" + bytes(100))).media_type == "application/zip"


def test_invalid_utf8_mostly_valid_is_replaced(tmp_path: Path) -> None:
    path = write(tmp_path, "notes.txt", "café olé naïve\n".encode() + b"bad \xff byte\n")
    ex = extract(path)
    assert ex.kind == "text"
    assert ex.preview == "café olé naïve\nbad \ufffd byte\n"
    assert ex.problems == ["undecodable bytes replaced (invalid UTF-8)"]


def test_cp1252_text(tmp_path: Path) -> None:
    path = write(tmp_path, "letter.txt", "Café – prix 5 € “quoted”\r\n".encode("cp1252"))
    ex = extract(path)
    assert ex.preview == "Café – prix 5 € “quoted”\n"
    assert ex.problems == ["not UTF-8: decoded as cp1252"]


def test_latin1_fallback_when_not_cp1252(tmp_path: Path) -> None:
    ex = extract(write(tmp_path, "odd.txt", b"caf\xe9 \x81 ok\n"))
    assert ex.kind == "text" and ex.preview.startswith("café")
    assert ex.problems == ["not UTF-8: decoded as latin-1"]


def test_control_characters_removed_from_preview(tmp_path: Path) -> None:
    ex = extract(write(tmp_path, "log.txt", "a\x1b[31mred\x1b[0m\tb\x07\r\nc\rd\n"))
    assert ex.preview == "a[31mred[0m\tb\nc\nd\n"


def test_truncation_on_multibyte_boundary(tmp_path: Path) -> None:
    path = write(tmp_path, "accents.txt", "é" * 100)
    ex = extract(path, max_preview_bytes=51)
    check_invariants(ex, path, 51)
    assert ex.preview == "é" * 25
    assert ex.truncated
    assert extract(path, max_preview_bytes=200).truncated is False


def test_prefix_cut_inside_a_character_is_not_an_error(tmp_path: Path) -> None:
    # 4 * 1 KiB is below the minimum head, so make the file longer than that head and cut mid-"€".
    path = write(tmp_path, "long.txt", b"x" + "€".encode() * 100_000)
    ex = extract(path, max_preview_bytes=1000)
    assert ex.problems == []
    assert ex.truncated and ex.preview.startswith("x€€")


def test_sparse_200_mib_file(tmp_path: Path) -> None:
    path = tmp_path / "huge.log"
    with path.open("wb") as fh:
        fh.write(b"log line with some words\n" * 4000)  # 100 KB of text, then a 200 MiB hole
        fh.truncate(200 * MiB)
    ex = extract(path)
    check_invariants(ex, path)
    assert ex.kind == "text"
    assert ex.size_bytes == 200 * MiB
    assert ex.truncated
    assert 60_000 < len(ex.preview.encode()) <= 65536
    assert describe(ex) == "text file, 200.0 MiB"


def test_sparse_pdf_over_size_cap_skips_text(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    with path.open("wb") as fh:
        fh.write(b"%PDF-1.7\n")
        fh.truncate(60 * MiB)
    ex = extract(path)
    assert (ex.kind, ex.preview, ex.pages) == ("pdf", "", None)
    assert any("larger than 50.0 MiB" in p for p in ex.problems)


# --- refusing what must not be read ------------------------------------------------------------------


def test_fifo_is_refused_without_opening(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.md"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            extract(fifo)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    # A blocking open() of a FIFO would hang forever: run it aside so the test fails instead.
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():
        with open(fifo, "wb"):  # unblock the stuck reader so the thread can end
            pass
        pytest.fail("extract() opened the FIFO")
    # This message comes from the lstat check, i.e. before any open(): not from the post-open check.
    assert isinstance(outcome[0], ValueError) and "not a regular file" in str(outcome[0])


def test_symlink_and_directory_are_refused(tmp_path: Path) -> None:
    target = write(tmp_path, "real.txt", "hello")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    with pytest.raises(ValueError, match="not a regular file"):
        extract(link)
    with pytest.raises(ValueError, match="not a regular file"):
        extract(tmp_path)
    with pytest.raises(FileNotFoundError):
        extract(tmp_path / "missing.txt")


def test_negative_cap_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        extract(write(tmp_path, "a.txt", "a"), max_preview_bytes=-1)


# --- notes and frontmatter ---------------------------------------------------------------------------


def test_bom_crlf_note(tmp_path: Path) -> None:
    text = "---\r\ntitle: Plan for Q1\r\ntags: [a, b]\r\n---\r\n# Heading\r\nBody line\r\n"
    path = write(tmp_path, "plan.md", b"\xef\xbb\xbf" + text.encode())
    ex = extract(path)
    check_invariants(ex, path)
    assert ex.kind == "note"
    assert ex.frontmatter == {"title": "Plan for Q1", "tags": "a, b"}
    assert ex.title == "Plan for Q1"
    assert ex.preview == "# Heading\nBody line\n"
    assert ex.email is None and ex.problems == []


def test_note_title_from_first_heading(tmp_path: Path) -> None:
    ex = extract(write(tmp_path, "n.markdown", "intro\n\n## Second-level title ##\n\n# Later\n"))
    assert ex.title == "Second-level title"


def test_yaml_11_surprises_are_kept_as_written(tmp_path: Path) -> None:
    note = (
        "---\ncountry: no\nstart: 12:30\nday: 2026-11-16\nflag: yes\nnothing:\nratio: 1e3\n"
        "nested: {a: [1, 2]}\ndup: first\ndup: second\n---\nbody\n"
    )
    ex = extract(write(tmp_path, "n.md", note))
    assert ex.problems == []
    assert ex.frontmatter == {
        "country": "no",
        "start": "12:30",
        "day": "2026-11-16",
        "flag": "yes",
        "nothing": "",
        "ratio": "1e3",
        "nested": '{"a": ["1", "2"]}',
        "dup": "second",
    }


def test_frontmatter_with_tabs_does_not_raise(tmp_path: Path) -> None:
    ex = extract(write(tmp_path, "n.md", "---\ntitle:\tTabbed\nlist:\n\t- a\n---\nbody\n"))
    assert ex.kind == "note"
    assert any("frontmatter ignored" in p for p in ex.problems)
    assert "Tabbed" in ex.preview  # read as body text instead


@pytest.mark.parametrize(
    ("frontmatter", "expect"),
    [
        ("- just\n- a list\n", "not a mapping"),
        ("just a string\n", "not a mapping"),
        ("key: [unclosed\n", "frontmatter ignored"),
        ("? [complex, key]\n: value\n", "frontmatter ignored"),
        ("a: !!python/object/apply:os.system [echo hi]\n", None),
    ],
)
def test_malformed_frontmatter_becomes_body(tmp_path: Path, frontmatter: str, expect: str | None) -> None:
    ex = extract(write(tmp_path, "n.md", f"---\n{frontmatter}---\nbody\n"))
    assert ex.kind == "note"
    if expect is None:  # tags are ignored: no object is ever constructed
        assert ex.frontmatter == {"a": "echo hi"}
    else:
        assert any(expect in p for p in ex.problems)
        assert ex.preview.startswith("---\n") and ex.frontmatter == {}


def test_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    ex = extract(write(tmp_path, "bomb.md", "---\n" + "\n".join(lines) + "\n---\nbody\n"))
    assert ex.frontmatter == {}
    assert any("aliases" in p for p in ex.problems)


def test_huge_and_unclosed_frontmatter(tmp_path: Path) -> None:
    ex = extract(write(tmp_path, "n.md", "---\n" + "k: v\n" * 30_000 + "---\nbody\n"))
    assert ex.frontmatter == {} and any("not closed" in p for p in ex.problems)


def test_frontmatter_values_are_capped(tmp_path: Path) -> None:
    many = "".join(f"k{i}: v\n" for i in range(300))
    ex = extract(write(tmp_path, "n.md", f"---\nlong: {'x' * 5000}\n{many}---\n"))
    assert len(ex.frontmatter["long"]) == 1000
    assert len(ex.frontmatter) == 100


def test_note_email_fields_are_cleaned(tmp_path: Path) -> None:
    note = '---\nfrom: "Eve <eve@x.org>"\nto: a@x.org, B <b@x.org>\nsubject: "Hi\\nBcc: all@x.org"\n'
    note += "date: 2026-11-16T09:00:00+01:00\n---\nbody\n"
    ex = extract(write(tmp_path, "n.md", note))
    assert ex.email is not None
    assert (ex.email.from_name, ex.email.from_addr) == ("Eve", "eve@x.org")
    assert ex.email.to == ["a@x.org", "b@x.org"]
    assert ex.email.subject == "Hi Bcc: all@x.org"
    assert ex.email.date == "2026-11-16T09:00:00+01:00"
    assert describe(ex).startswith("note from Eve <eve@x.org>")


def test_note_dates_keep_their_precision(tmp_path: Path) -> None:
    ex = extract(write(tmp_path, "n.md", "---\nsubject: s\ndate: 2026-11-16\n---\n"))
    assert ex.email is not None and ex.email.date == "2026-11-16"
    ex = extract(write(tmp_path, "n.md", "---\nsubject: s\ndate: next Tuesday\n---\n"))
    assert ex.email is not None and ex.email.date == "next Tuesday"


def test_long_note_is_capped_but_keeps_frontmatter(tmp_path: Path) -> None:
    path = write(tmp_path, "long.md", "---\ntitle: Long\n---\n" + "ü" * 300_000)
    ex = extract(path, max_preview_bytes=101)
    check_invariants(ex, path, 101)
    assert ex.frontmatter == {"title": "Long"} and ex.title == "Long"
    assert ex.preview == "ü" * 50 and ex.truncated


# --- email -------------------------------------------------------------------------------------------


def test_broken_mime_does_not_raise(tmp_path: Path) -> None:
    raw = (
        b'From: "\r\nTo: ,,,\r\nMessage-ID: <[@]>\r\nDate: not a date\r\nSubject: still here\r\n'
        b'Content-Type: multipart/mixed; boundary="zz"\r\n\r\nno boundary ever appears\r\n'
    )
    path = write(tmp_path, "broken.eml", raw)
    ex = extract(path)
    check_invariants(ex, path)
    assert ex.kind == "email" and ex.email is not None
    assert ex.email.subject == "still here"
    assert ex.email.date == "not a date"
    assert any(p.startswith("broken MIME") for p in ex.problems)


def test_garbage_eml(tmp_path: Path) -> None:
    path = write(tmp_path, "junk.eml", "this is not an email\njust: words\n\x7f\n")
    ex = extract(path)
    check_invariants(ex, path)
    assert ex.kind == "email" and ex.email is not None and ex.email.from_addr == ""
    assert describe(ex) == "email with no sender"


def test_iso_2022_jp_email(tmp_path: Path) -> None:
    import base64

    subject = base64.b64encode("会議の件".encode("iso-2022-jp")).decode()
    raw = (
        f"From: =?iso-2022-jp?b?{subject}?= <taro@example.jp>\r\nSubject: =?iso-2022-jp?b?{subject}?=\r\n"
        "Content-Type: text/plain; charset=iso-2022-jp\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
    ).encode() + "明日の会議について。\r\n".encode("iso-2022-jp")
    ex = extract(write(tmp_path, "jp.eml", raw))
    assert ex.email is not None
    assert ex.title == ex.email.subject == ex.email.from_name == "会議の件"
    assert ex.preview == "明日の会議について。\n"
    assert ex.problems == []


def test_koi8r_email(tmp_path: Path) -> None:
    raw = b"From: a@b.ru\r\nSubject: =?koi8-r?b?8NLJ18XU?=\r\nContent-Type: text/plain; charset=koi8-r\r\n\r\n"
    ex = extract(write(tmp_path, "ru.eml", raw + "Привет, мир".encode("koi8-r")))
    assert ex.title == "Привет" and ex.preview == "Привет, мир"


@pytest.mark.parametrize("charset", ["x-unknown-foo", "rot13", "idna"])
def test_unknown_charset_email(tmp_path: Path, charset: str) -> None:
    raw = f"From: =?x-bogus?q?Jos=E9?= <j@x.es>\r\nContent-Type: text/plain; charset={charset}\r\n\r\n"
    path = write(tmp_path, "u.eml", raw.encode() + "café".encode())
    ex = extract(path)
    check_invariants(ex, path)
    assert ex.email is not None and ex.email.from_addr == "j@x.es"
    assert "\udce9" not in ex.email.from_name  # undecodable header bytes never leak as surrogates
    assert ex.preview.startswith("caf")
    if charset == "x-unknown-foo":
        assert ex.preview == "café"
        assert any("unknown charset 'x-unknown-foo'" in p for p in ex.problems)


def test_header_injection_is_neutralised(tmp_path: Path) -> None:
    raw = (
        b"From: =?utf-8?q?Mallory=0D=0ABcc=3A_x?= <m@evil.example>\r\n"
        b"Subject: =?utf-8?q?Invoice=0D=0A---=0Aapproved:_true?=\r\n\r\nhi\r\n"
    )
    ex = extract(write(tmp_path, "inj.eml", raw))
    assert ex.email is not None
    assert ex.email.subject == "Invoice --- approved: true"
    # The email package refuses CR/LF in a display name; the raw header is decoded and cleaned instead.
    assert ex.email.from_addr == "m@evil.example"
    assert any(p.startswith("broken MIME: from header") for p in ex.problems)


def test_html_only_email(tmp_path: Path) -> None:
    html = (
        "<html><head><title>T</title><style>p {color: red}</style><script>alert('x')</script></head>"
        "<body><h1>Big&nbsp;news</h1><p>First   paragraph &amp; more.</p><p>Second<br>line</p></body></html>"
    )
    raw = f"From: a@b.c\r\nSubject: html\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}"
    ex = extract(write(tmp_path, "h.eml", raw))
    assert ex.preview == "Big news\n\nFirst paragraph & more.\n\nSecond\nline"
    assert ex.problems == []


def test_body_declared_utf8_but_cp1252(tmp_path: Path) -> None:
    raw = b"From: a@b.c\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    ex = extract(write(tmp_path, "m.eml", raw + "Café 5 €".encode("cp1252")))
    assert ex.preview == "Café 5 €"
    assert "not UTF-8: decoded as cp1252" in ex.problems


def make_email_with_attachment(body: str) -> bytes:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = "Ana <ana@example.com>"
    msg["To"] = "me@example.com, Bob <bob@example.com>"
    msg["Cc"] = "carol@example.com"
    msg["Subject"] = "Contract attached"
    msg["In-Reply-To"] = "<prev@example.com>"
    msg.set_content(body)
    msg.add_attachment(make_pdf(["Contract"]), maintype="application", subtype="pdf", filename="a.pdf")
    msg.add_attachment(b"\x89PNG\r\n\x1a\n" + bytes(12 * 1024), maintype="image", subtype="png")
    return msg.as_bytes()


def test_email_with_attachments(tmp_path: Path) -> None:
    path = write(tmp_path, "att.eml", make_email_with_attachment("Please sign.\n"))
    ex = extract(path)
    check_invariants(ex, path)
    assert ex.email is not None
    assert ex.email.to == ["me@example.com", "bob@example.com"]
    assert ex.email.cc == ["carol@example.com"]
    assert ex.email.in_reply_to == "<prev@example.com>"
    pdf_size = len(make_pdf(["Contract"]))
    assert ex.preview == f"Please sign.\n\nAttachments: a.pdf ({pdf_size} B), unnamed image/png (12.0 KiB)"
    assert ex.problems == []


def test_attachment_list_survives_truncation(tmp_path: Path) -> None:
    path = write(tmp_path, "att.eml", make_email_with_attachment("ü" * 50_000))
    ex = extract(path, max_preview_bytes=1000)
    check_invariants(ex, path, 1000)
    assert ex.truncated
    assert ex.preview.startswith("üü") and ex.preview.endswith("unnamed image/png (12.0 KiB)")


def test_email_without_suffix_is_sniffed(tmp_path: Path) -> None:
    raw = "Received: from x\r\nFrom: a@b.c\r\nSubject: no suffix\r\n\r\nbody\r\n"
    ex = extract(write(tmp_path, "message", raw))
    assert (ex.kind, ex.media_type, ex.title) == ("email", "message/rfc822", "no suffix")
    assert extract(write(tmp_path, "memo.txt", raw)).kind == "text"  # a suffix is trusted


# --- PDF ---------------------------------------------------------------------------------------------


def test_multi_page_pdf_with_title(tmp_path: Path) -> None:
    path = write(tmp_path, "doc.pdf", make_pdf(["Page one text", "Page two text"], title="Quarterly report"))
    ex = extract(path)
    check_invariants(ex, path)
    assert (ex.kind, ex.pages, ex.title) == ("pdf", 2, "Quarterly report")
    assert "Page one text" in ex.preview and "Page two text" in ex.preview
    assert describe(ex).startswith("PDF, 2 pages, ")


def test_pdf_pages_stop_at_preview_cap(tmp_path: Path) -> None:
    path = write(tmp_path, "long.pdf", make_pdf([f"Page {i} " + "word " * 40 for i in range(50)]))
    ex = extract(path, max_preview_bytes=500)
    check_invariants(ex, path, 500)
    assert ex.truncated and ex.pages == 50
    assert "Page 0" in ex.preview and "Page 49" not in ex.preview


@pytest.mark.parametrize(
    "data",
    [
        make_pdf(["Truncated"])[:300],
        make_pdf(["Bad xref"]).replace(b"startxref\n", b"startxref\n99999"),
        b"%PDF-1.4\n" + bytes(range(256)) * 20,
        b"%PDF-",
    ],
    ids=["truncated", "bad-xref", "junk", "header-only"],
)
def test_corrupt_pdf_does_not_raise(tmp_path: Path, caplog: pytest.LogCaptureFixture, data: bytes) -> None:
    path = write(tmp_path, "bad.pdf", data)
    with caplog.at_level(logging.DEBUG):
        ex = extract(path)
    check_invariants(ex, path)
    assert ex.kind == "pdf" and ex.media_type == "application/pdf"
    assert ex.problems and all(p.startswith("PDF") for p in ex.problems)
    assert [r for r in caplog.records if r.name.startswith("pypdf")] == []  # captured, not logged
    assert logging.getLogger("pypdf").propagate and not logging.getLogger("pypdf").handlers


def test_encrypted_pdf(tmp_path: Path) -> None:
    from io import BytesIO

    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(BytesIO(make_pdf(["Secret"]))))
    writer.encrypt("user-password", algorithm="RC4-128")
    out = BytesIO()
    writer.write(out)
    ex = extract(write(tmp_path, "locked.pdf", out.getvalue()))
    assert ex.kind == "pdf" and "Secret" not in ex.preview
    assert any("PDF text extraction failed" in p for p in ex.problems)


def test_concurrent_pdf_extraction_restores_pypdf_logger(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.pdf", make_pdf(["Bad xref"]).replace(b"startxref\n", b"startxref\n99999"))
    good = write(tmp_path, "good.pdf", make_pdf(["Fine"]))
    results: list[Extracted] = []
    threads = [threading.Thread(target=lambda p=p: results.append(extract(p))) for p in [bad, good] * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 8
    assert all("Fine" in r.preview for r in results if r.size_bytes == good.stat().st_size)
    assert logging.getLogger("pypdf").propagate and not logging.getLogger("pypdf").handlers
