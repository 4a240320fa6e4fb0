"""Text extraction per format: txt, md, html, pdf, docx. Each returns the title (when the file names one)
and text segments with the page they come from (PDFs), or raises `ExtractionError` with a reason a user
can act on."""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pypdf import PdfReader

SUPPORTED = {"txt", "md", "html", "pdf", "docx"}
_EXTENSIONS = {
    ".txt": "txt",
    ".text": "txt",
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".docx": "docx",
}
# A docx is a zip: refuse archives that would inflate past this, or by more than this ratio (zip bombs).
MAX_DOCX_UNCOMPRESSED = 256 * 1024 * 1024
MAX_DOCX_RATIO = 200


class ExtractionError(ValueError):
    """The file cannot be turned into text; the message is the job's failure reason."""


@dataclass(frozen=True)
class Segment:
    text: str
    page: int | None = None


@dataclass(frozen=True)
class Extracted:
    title: str | None
    segments: list[Segment]


def content_type_for(filename: str) -> str | None:
    """The format a filename's extension names, or None when unsupported."""
    return _EXTENSIONS.get(PurePosixPath(filename.lower()).suffix)


def extract(data: bytes, content_type: str) -> Extracted:
    """Text of `data` in `content_type` (one of SUPPORTED)."""
    if not data:
        raise ExtractionError("the file is empty")
    if content_type in ("txt", "md"):
        result = Extracted(None, [Segment(_decode_text(data))])
    elif content_type == "html":
        result = _html(_decode_text(data))
    elif content_type == "pdf":
        result = _pdf(data)
    elif content_type == "docx":
        result = _docx(data)
    else:
        raise ExtractionError(f"unsupported content type {content_type!r}")
    segments = [Segment(_normalise(s.text), s.page) for s in result.segments]
    segments = [s for s in segments if s.text]
    if not segments:
        raise ExtractionError("no text could be extracted from the file")
    return Extracted(result.title, segments)


def precheck(data: bytes, content_type: str) -> None:
    """The cheap checks that refuse a file before it is queued (`ExtractionError`): a PDF must open (magic
    bytes, cross-reference table, page tree; not password-protected), a DOCX must be a zip whose members
    inflate, counted for real, within their declared sizes and the caps. Text formats are left to the
    worker: deciding they are binary costs as much as decoding them."""
    if content_type == "pdf":
        _open_pdf(data)
    elif content_type == "docx":
        _docx_archive(data)


def _decode_text(data: bytes) -> str:
    # Binary junk with a text name: NUL bytes or a high share of control characters give it away.
    if b"\x00" in data[:65536]:
        raise ExtractionError("the file is binary, not text (it contains NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    sample = text[:65536]
    control = sum(1 for c in sample if ord(c) < 32 and c not in "\t\n\r\f") + sample.count("\ufffd")
    if sample and control / len(sample) > 0.05:
        raise ExtractionError("the file is binary, not text (too many control characters)")
    return text


def _html(text: str) -> Extracted:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    title = soup.title.get_text(strip=True) if soup.title else None
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        tag.decompose()
    # Block elements end a line; inline ones (b, a, span…) stay inside their sentence.
    for tag in soup.find_all(_BLOCKS):
        tag.append("\n")
    return Extracted(title or None, [Segment(soup.get_text())])


_PDF_ERRORS = (ValueError, KeyError, TypeError, AttributeError, IndexError, OSError, RecursionError)


def _open_pdf(data: bytes) -> PdfReader:
    """A reader of the PDF with its page tree read, or `ExtractionError` (corrupt, password-protected)."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    # The header may follow a little junk (readers allow up to 1 KiB); without it this is no PDF at all.
    if b"%PDF-" not in data[:1024]:
        raise ExtractionError("the PDF is corrupt or unreadable: it does not start with %PDF-")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # An empty user password still opens some "encrypted" PDFs; anything else needs the password.
            try:
                if not reader.decrypt(""):
                    raise ExtractionError("the PDF is password-protected")
            except ExtractionError:
                raise
            except Exception:
                raise ExtractionError("the PDF is password-protected") from None
        if len(reader.pages) == 0:
            raise ExtractionError("the PDF has no pages")
    except ExtractionError:
        raise
    except (PdfReadError, *_PDF_ERRORS) as exc:
        raise ExtractionError(f"the PDF is corrupt or unreadable: {exc}") from None
    return reader


def _pdf(data: bytes) -> Extracted:
    from pypdf.errors import PdfReadError

    reader = _open_pdf(data)
    try:
        title = None
        if reader.metadata is not None and reader.metadata.title:
            title = str(reader.metadata.title)
        pages = [Segment(page.extract_text() or "", i + 1) for i, page in enumerate(reader.pages)]
    except (PdfReadError, *_PDF_ERRORS) as exc:
        raise ExtractionError(f"the PDF is corrupt or unreadable: {exc}") from None
    if not any(p.text.strip() for p in pages):
        raise ExtractionError("the PDF has no extractable text (scanned images need OCR)")
    return Extracted(title, pages)


def _docx_archive(data: bytes) -> None:
    """Refuse a DOCX that is no zip, or a zip bomb (declared or real sizes past the caps)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError):
        raise ExtractionError("the DOCX is corrupt (not a zip archive)") from None
    total = sum(i.file_size for i in archive.infolist())
    packed = max(1, sum(i.compress_size for i in archive.infolist()))
    if total > MAX_DOCX_UNCOMPRESSED or total / packed > MAX_DOCX_RATIO:
        raise ExtractionError(
            f"the DOCX would inflate to {total} bytes ({total // packed}x its size): refused as a zip bomb"
        )
    _check_real_sizes(data, archive)


def _docx(data: bytes) -> Extracted:
    _docx_archive(data)
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises assorted errors on malformed packages
        raise ExtractionError(f"the DOCX is corrupt or unreadable: {exc}") from None
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text for cell in row.cells))
    title = document.core_properties.title or None
    return Extracted(title, [Segment("\n".join(parts))])


_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # a zip member's local header, before its name and extra field
_INFLATE_STEP = 1 << 20


def _check_real_sizes(data: bytes, archive: zipfile.ZipFile) -> None:
    """Inflate every member in bounded steps and compare what comes out with what the directory declares:
    the directory may lie (a 1 GiB member declared as 5 KB), and zipfile trusts it, inflating the whole
    member in one call before it notices. A member that inflates past its declared size, or past the caps,
    is refused before python-docx reads anything."""
    for info in archive.infolist():
        if info.compress_type == zipfile.ZIP_STORED:
            continue  # stored members are their own size: nothing to inflate
        if info.compress_type != zipfile.ZIP_DEFLATED:
            raise ExtractionError(f"the DOCX member {info.filename!r} uses an unsupported compression")
        start = info.header_offset
        try:
            fields = _LOCAL_HEADER.unpack_from(data, start)
        except struct.error:
            fields = (b"",)
        if fields[0] != b"PK\x03\x04":
            raise ExtractionError(f"the DOCX is corrupt (member {info.filename!r} has no valid header)")
        body = start + _LOCAL_HEADER.size + fields[9] + fields[10]  # after the name and the extra field
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        pending: bytes | memoryview = memoryview(data)[body : body + info.compress_size]
        size = 0
        try:
            while pending and not inflater.eof:
                size += len(inflater.decompress(pending, _INFLATE_STEP))
                pending = inflater.unconsumed_tail
                if size > info.file_size or size > MAX_DOCX_UNCOMPRESSED:
                    raise ExtractionError(
                        f"the DOCX member {info.filename!r} inflates past its declared {info.file_size} "
                        "bytes: refused as a zip bomb"
                    )
        except zlib.error:
            raise ExtractionError(
                f"the DOCX is corrupt (member {info.filename!r} does not inflate)"
            ) from None


_BLOCKS = [
    "p",
    "div",
    "br",
    "li",
    "tr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "pre",
    "blockquote",
    "section",
    "article",
    "table",
    "ul",
    "ol",
    "dd",
    "dt",
    "header",
    "footer",
    "title",
]
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_BLANKS = re.compile(r"\n\s*\n\s*")


def _normalise(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = re.sub(r" *\n *", "\n", _SPACES.sub(" ", text))
    return _BLANKS.sub("\n\n", text).strip()
