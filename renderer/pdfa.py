"""PDF/A-3b for every invoice, by construction, and the Factur-X attachment.

:func:`conform` is called on the ReportLab canvas just before ``save()``. It adds what
ISO 19005-3 (level B) asks of a document that is otherwise already conforming (every
font embedded and subset, no encryption, no JavaScript, no transparency groups without
an output intent):

- an XMP metadata stream on the catalog with the PDF/A identification (part 3,
  conformance B) and the same title, author, subject, creator, producer and dates as
  the document information dictionary (PDF/A requires them to agree);
- an sRGB output intent with its ICC profile (``sRGB.icc`` of Debian's
  ``icc-profiles-free``, zlib licence: free to redistribute; read once per process);
- a document ID derived from the invoice (operator, number, issue date), so the bytes
  stay reproducible and two invoices never share an ID;
- for Factur-X, the CII XML as the embedded file ``factur-x.xml`` (``/AFRelationship
  /Data``, listed in the catalog's ``/AF`` and ``/Names /EmbeddedFiles``), and the
  Factur-X XMP extension schema with its properties (profile EN 16931).

The work per invoice is string formatting and a few PDF objects: well under 0.3 ms
(``bench/einvoice.py`` measures it).
"""

from __future__ import annotations

import hashlib
import threading
import zlib
from datetime import date
from pathlib import Path

from reportlab.pdfbase.pdfdoc import (
    PDFArray,
    PDFDictionary,
    PDFName,
    PDFObject,
    PDFStream,
    PDFString,
)
from reportlab.pdfgen.canvas import Canvas

from invoicer.renderer import _reportlab

__all__ = ["ICC_PACKAGE", "ICC_PATH", "IccProfileMissingError", "conform", "xmp"]

ICC_PATH = Path("/usr/share/color/icc/sRGB.icc")
ICC_PACKAGE = "icc-profiles-free"
OUTPUT_CONDITION = "sRGB IEC61966-2.1"

_lock = threading.Lock()
_icc: bytes | None = None


class IccProfileMissingError(RuntimeError):
    """The sRGB profile is not installed; the message names the Debian package."""


def _icc_deflated() -> bytes:
    """The ICC profile, deflated once per process (it is the same in every invoice)."""
    global _icc
    if _icc is None:
        with _lock:
            if _icc is None:
                try:
                    profile = ICC_PATH.read_bytes()
                except OSError:
                    raise IccProfileMissingError(
                        f"the sRGB ICC profile {ICC_PATH} is not installed (PDF/A output "
                        f"intent): apt-get install {ICC_PACKAGE}") from None
                _icc = zlib.compress(profile, 9)
    return _icc


def _xml_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_FACTUR_X_SCHEMA = """<rdf:Description rdf:about="" \
xmlns:pdfaExtension="http://www.aiim.org/pdfa/ns/extension/" \
xmlns:pdfaSchema="http://www.aiim.org/pdfa/ns/schema#" \
xmlns:pdfaProperty="http://www.aiim.org/pdfa/ns/property#">
<pdfaExtension:schemas><rdf:Bag><rdf:li rdf:parseType="Resource">
<pdfaSchema:schema>Factur-X PDFA Extension Schema</pdfaSchema:schema>
<pdfaSchema:namespaceURI>urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#\
</pdfaSchema:namespaceURI>
<pdfaSchema:prefix>fx</pdfaSchema:prefix>
<pdfaSchema:property><rdf:Seq>
""" + "".join(f"""<rdf:li rdf:parseType="Resource"><pdfaProperty:name>{name}</pdfaProperty:name>\
<pdfaProperty:valueType>Text</pdfaProperty:valueType>\
<pdfaProperty:category>external</pdfaProperty:category>\
<pdfaProperty:description>{desc}</pdfaProperty:description></rdf:li>
""" for name, desc in (
    ("DocumentFileName", "The name of the embedded XML document"),
    ("DocumentType", "The type of the hybrid document in capital letters, e.g. INVOICE"),
    ("Version", "The actual version of the Factur-X XML schema"),
    ("ConformanceLevel", "The conformance level of the embedded Factur-X data"))) + """\
</rdf:Seq></pdfaSchema:property></rdf:li></rdf:Bag></pdfaExtension:schemas>
</rdf:Description>
<rdf:Description rdf:about="" xmlns:fx="urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#">
<fx:DocumentType>INVOICE</fx:DocumentType>
<fx:DocumentFileName>factur-x.xml</fx:DocumentFileName>
<fx:Version>1.0</fx:Version>
<fx:ConformanceLevel>EN 16931</fx:ConformanceLevel>
</rdf:Description>
"""


def xmp(*, title: str, author: str, subject: str, creator: str, producer: str,
        instant: str, document_id: str, factur_x: bool) -> bytes:
    """The XMP packet: PDF/A-3b identification and the document information, mirrored."""
    t, a, s = _xml_text(title), _xml_text(author), _xml_text(subject)
    return (f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/">\
<pdfaid:part>3</pdfaid:part><pdfaid:conformance>B</pdfaid:conformance></rdf:Description>
<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">\
<dc:format>application/pdf</dc:format>\
<dc:title><rdf:Alt><rdf:li xml:lang="x-default">{t}</rdf:li></rdf:Alt></dc:title>\
<dc:creator><rdf:Seq><rdf:li>{a}</rdf:li></rdf:Seq></dc:creator>\
<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{s}</rdf:li></rdf:Alt></dc:description>\
</rdf:Description>
<rdf:Description rdf:about="" xmlns:pdf="http://ns.adobe.com/pdf/1.3/">\
<pdf:Producer>{_xml_text(producer)}</pdf:Producer><pdf:Keywords></pdf:Keywords>\
<pdf:Trapped>False</pdf:Trapped></rdf:Description>
<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/">\
<xmp:CreatorTool>{_xml_text(creator)}</xmp:CreatorTool><xmp:CreateDate>{instant}</xmp:CreateDate>\
<xmp:ModifyDate>{instant}</xmp:ModifyDate><xmp:MetadataDate>{instant}</xmp:MetadataDate>\
</rdf:Description>
<rdf:Description rdf:about="" xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/">\
<xmpMM:DocumentID>uuid:{document_id}</xmpMM:DocumentID></rdf:Description>
{_FACTUR_X_SCHEMA if factur_x else ""}</rdf:RDF></x:xmpmeta>
<?xpacket end="w"?>
""").encode()


class _MimeName(PDFObject):
    """The PDF name ``/text#2Fxml`` (``text/xml``): ReportLab's PDFName would write the
    slash as is, ending the name, and escape a ``#``; so this one is written raw."""

    def format(self, document) -> bytes:
        return b"/text#2Fxml"


class _PlainStream(PDFStream):
    """A stream written without any filter (ReportLab would write ``/Filter []``)."""

    def format(self, document) -> bytes:
        dictionary = PDFDictionary({**self.dictionary.dict, "Length": len(self.content)})
        return dictionary.format(document) + b"\nstream\n" + self.content + b"endstream\n"


def _uuid(digest: bytes) -> str:
    h = digest[:16].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _icc_stream() -> PDFStream:
    return PDFStream(PDFDictionary({"N": 3, "Filter": PDFName("FlateDecode")}),
                     _icc_deflated())


def _output_intent(refs: list[PDFObject]) -> PDFDictionary:
    return PDFDictionary({
        "Type": PDFName("OutputIntent"), "S": PDFName("GTS_PDFA1"),
        "OutputConditionIdentifier": PDFString(OUTPUT_CONDITION),
        "Info": PDFString(OUTPUT_CONDITION), "RegistryName": PDFString("http://www.color.org"),
        "DestOutputProfile": refs[0]})


def conform(canvas: Canvas, *, identity: str, issued: date,
            attachment: bytes | None = None) -> None:
    """Make the document being drawn on ``canvas`` a PDF/A-3b; embed ``attachment`` (the
    Factur-X CII XML) if given. Call after the document information is set, just
    before ``canvas.save()``.

    ``identity`` names the invoice uniquely (operator and number): the document ID is
    derived from it. ``issued`` is the invoice's issue date, the document's date
    (noon UTC, as the renderer stamps the information dictionary).
    """
    doc = _reportlab.document(canvas)
    info = doc.info
    # Embedded files with /AF are PDF 1.7 features, and PDF/A-3 is based on PDF 1.7.
    _reportlab.set_pdf_version(doc, (1, 7))
    digest = hashlib.sha256(identity.encode("utf-8")).digest()
    _reportlab.set_file_id(doc, digest[:16])
    instant = f"{issued:%Y-%m-%d}T12:00:00Z"

    catalog = doc.Catalog
    # The profile's stream and the output intent are the same in every document (but
    # for the intent's reference to the stream): formatted once a process.
    icc = doc.Reference(_reportlab.constant("sRGB ICC profile", _icc_stream, doc))
    intent = _reportlab.template(("output intent",), _output_intent, [icc], doc)
    packet = xmp(title=info.title, author=info.author, subject=info.subject,
                 creator=info.creator, producer=info.producer, instant=instant,
                 document_id=_uuid(digest), factur_x=attachment is not None)
    # PDF/A: the metadata stream is left unfiltered so any tool can read it.
    catalog.Metadata = _PlainStream(
        PDFDictionary({"Type": PDFName("Metadata"), "Subtype": PDFName("XML")}), packet)
    catalog.OutputIntents = PDFArray([doc.Reference(intent)])
    extra = ["OutputIntents"]
    if attachment is not None:
        pdf_date = f"D:{issued:%Y%m%d}120000Z"
        embedded = PDFStream(PDFDictionary({
            "Type": PDFName("EmbeddedFile"), "Subtype": _MimeName(),
            "Filter": PDFName("FlateDecode"),
            "Params": PDFDictionary({"ModDate": PDFString(pdf_date),
                                     "Size": len(attachment)})}),
            zlib.compress(attachment, 6))
        spec = doc.Reference(PDFDictionary({
            "Type": PDFName("Filespec"), "F": PDFString("factur-x.xml"),
            "UF": PDFString("factur-x.xml"), "Desc": PDFString("Factur-X invoice (EN 16931)"),
            "AFRelationship": PDFName("Data"),
            "EF": PDFDictionary({"F": doc.Reference(embedded),
                                 "UF": doc.Reference(embedded)})}))
        catalog.Names = PDFDictionary({"EmbeddedFiles": PDFDictionary(
            {"Names": PDFArray([PDFString("factur-x.xml"), spec])})})
        catalog.AF = PDFArray([spec])
        extra.append("AF")
    # ReportLab's catalog writes only the keys it knows; these two are PDF 2.0 / PDF/A
    # keys it does not, so this catalog is told about them (as direct arrays).
    catalog.__NoDefault__ = [*type(catalog).__NoDefault__, *extra]
