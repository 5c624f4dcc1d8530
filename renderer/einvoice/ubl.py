"""OASIS UBL 2.1 Invoice (XRechnung UBL, Peppol BIS Billing 3.0, RO_CIUS).

Written like :mod:`.cii`: strings in the order of the XML Schema, values escaped and
formatted by :mod:`.model`, the result proven by the per-invoice XSD check.
"""

from __future__ import annotations

from invoicer.renderer.einvoice.model import Document, Party, date

_HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n'
         '<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2" '
         'xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2" '
         'xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">')
_VAT = "<cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme>"


def _address(p: Party) -> str:
    out = ["<cac:PostalAddress>"]
    if p.lines:
        out.append(f"<cbc:StreetName>{p.lines[0]}</cbc:StreetName>")
    if len(p.lines) > 1:
        out.append(f"<cbc:AdditionalStreetName>{p.lines[1]}</cbc:AdditionalStreetName>")
    out.append(f"<cbc:CityName>{p.city}</cbc:CityName>")
    if p.postcode:
        out.append(f"<cbc:PostalZone>{p.postcode}</cbc:PostalZone>")
    if len(p.lines) > 2:
        out.append(f"<cac:AddressLine><cbc:Line>{p.lines[2]}</cbc:Line></cac:AddressLine>")
    out.append(f"<cac:Country><cbc:IdentificationCode>{p.country}</cbc:IdentificationCode>"
               "</cac:Country></cac:PostalAddress>")
    return "".join(out)


def _party(tag: str, p: Party, creditor_id: str | None = None) -> str:
    out = [f"<cac:{tag}><cac:Party>"]
    if p.endpoint_id:
        out.append(f'<cbc:EndpointID schemeID="{p.endpoint_scheme}">{p.endpoint_id}'
                   "</cbc:EndpointID>")
    if creditor_id:
        out.append(f'<cac:PartyIdentification><cbc:ID schemeID="SEPA">{creditor_id}</cbc:ID>'
                   "</cac:PartyIdentification>")
    elif p.identifier:
        out.append(f"<cac:PartyIdentification><cbc:ID>{p.identifier}</cbc:ID>"
                   "</cac:PartyIdentification>")
    out.append(_address(p))
    if p.vat_id:
        out.append(f"<cac:PartyTaxScheme><cbc:CompanyID>{p.vat_id}</cbc:CompanyID>{_VAT}"
                   "</cac:PartyTaxScheme>")
    out.append(f"<cac:PartyLegalEntity><cbc:RegistrationName>{p.name}</cbc:RegistrationName>")
    if p.legal_id:
        out.append(f"<cbc:CompanyID>{p.legal_id}</cbc:CompanyID>")
    out.append("</cac:PartyLegalEntity>")
    if p.contact_name:
        out.append(f"<cac:Contact><cbc:Name>{p.contact_name}</cbc:Name>")
        if p.contact_phone:
            out.append(f"<cbc:Telephone>{p.contact_phone}</cbc:Telephone>")
        if p.contact_email:
            out.append(f"<cbc:ElectronicMail>{p.contact_email}</cbc:ElectronicMail>")
        out.append("</cac:Contact>")
    out.append(f"</cac:Party></cac:{tag}>")
    return "".join(out)


def _category(tag: str, category: str, pct: str | None, code: str | None = None,
              reason: str | None = None) -> str:
    out = [f"<cac:{tag}><cbc:ID>{category}</cbc:ID>"]
    if pct is not None:
        out.append(f"<cbc:Percent>{pct}</cbc:Percent>")
    if code:
        out.append(f"<cbc:TaxExemptionReasonCode>{code}</cbc:TaxExemptionReasonCode>")
    if reason:
        out.append(f"<cbc:TaxExemptionReason>{reason}</cbc:TaxExemptionReason>")
    out.append(f"{_VAT}</cac:{tag}>")
    return "".join(out)


def write(doc: Document, customization: str, profile: str | None) -> bytes:
    """The UBL Invoice of ``doc`` under specification identifier ``customization``."""
    cur = f' currencyID="{doc.currency}"'
    out = [_HEAD, f"<cbc:CustomizationID>{customization}</cbc:CustomizationID>"]
    if profile:
        out.append(f"<cbc:ProfileID>{profile}</cbc:ProfileID>")
    out.append(f"<cbc:ID>{doc.number}</cbc:ID><cbc:IssueDate>{date(doc.issue_date)}"
               f"</cbc:IssueDate><cbc:DueDate>{date(doc.due_date)}</cbc:DueDate>"
               "<cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>")
    for note in doc.notes:
        out.append(f"<cbc:Note>{note}</cbc:Note>")
    out.append(f"<cbc:DocumentCurrencyCode>{doc.currency}</cbc:DocumentCurrencyCode>")
    if doc.buyer_reference:
        out.append(f"<cbc:BuyerReference>{doc.buyer_reference}</cbc:BuyerReference>")
    out.append(f"<cac:InvoicePeriod><cbc:StartDate>{date(doc.period_start)}</cbc:StartDate>"
               f"<cbc:EndDate>{date(doc.period_end)}</cbc:EndDate></cac:InvoicePeriod>")
    pay = doc.payment
    out.append(_party("AccountingSupplierParty", doc.seller, pay.creditor_id))
    out.append(_party("AccountingCustomerParty", doc.buyer))
    if doc.deliver_to_country:
        out.append("<cac:Delivery><cac:DeliveryLocation><cac:Address><cac:Country>"
                   f"<cbc:IdentificationCode>{doc.deliver_to_country}</cbc:IdentificationCode>"
                   "</cac:Country></cac:Address></cac:DeliveryLocation></cac:Delivery>")
    out.append(f'<cac:PaymentMeans><cbc:PaymentMeansCode name="{pay.text}">{pay.code}'
               "</cbc:PaymentMeansCode>")
    if pay.remittance:
        out.append(f"<cbc:PaymentID>{pay.remittance}</cbc:PaymentID>")
    if pay.payee_iban:
        out.append(f"<cac:PayeeFinancialAccount><cbc:ID>{pay.payee_iban}</cbc:ID>")
        if pay.payee_bic:
            out.append("<cac:FinancialInstitutionBranch>"
                       f"<cbc:ID>{pay.payee_bic}</cbc:ID></cac:FinancialInstitutionBranch>")
        out.append("</cac:PayeeFinancialAccount>")
    if pay.mandate:
        out.append(f"<cac:PaymentMandate><cbc:ID>{pay.mandate}</cbc:ID>"
                   f"<cac:PayerFinancialAccount><cbc:ID>{pay.debited_iban}</cbc:ID>"
                   "</cac:PayerFinancialAccount></cac:PaymentMandate>")
    out.append(f"</cac:PaymentMeans><cac:PaymentTerms><cbc:Note>{doc.terms}</cbc:Note>"
               f"</cac:PaymentTerms><cac:TaxTotal><cbc:TaxAmount{cur}>{doc.tax_total}"
               "</cbc:TaxAmount>")
    for b in doc.breakdown:
        out.append(f"<cac:TaxSubtotal><cbc:TaxableAmount{cur}>{b.basis}</cbc:TaxableAmount>"
                   f"<cbc:TaxAmount{cur}>{b.tax}</cbc:TaxAmount>"
                   f"{_category('TaxCategory', b.category, b.percent, b.reason_code, b.reason)}"
                   "</cac:TaxSubtotal>")
    out.append("</cac:TaxTotal><cac:LegalMonetaryTotal>"
               f"<cbc:LineExtensionAmount{cur}>{doc.line_total}</cbc:LineExtensionAmount>"
               f"<cbc:TaxExclusiveAmount{cur}>{doc.line_total}</cbc:TaxExclusiveAmount>"
               f"<cbc:TaxInclusiveAmount{cur}>{doc.grand_total}</cbc:TaxInclusiveAmount>"
               f"<cbc:PayableAmount{cur}>{doc.due_amount}</cbc:PayableAmount>"
               "</cac:LegalMonetaryTotal>")
    for ln in doc.lines:
        base = (f'<cbc:BaseQuantity unitCode="{ln.unit}">{ln.base_quantity}</cbc:BaseQuantity>'
                if ln.base_quantity else "")
        out.append(
            f"<cac:InvoiceLine><cbc:ID>{ln.id}</cbc:ID><cbc:Note>{ln.note}</cbc:Note>"
            f'<cbc:InvoicedQuantity unitCode="{ln.unit}">{ln.quantity}</cbc:InvoicedQuantity>'
            f"<cbc:LineExtensionAmount{cur}>{ln.net}</cbc:LineExtensionAmount>"
            f"<cac:Item><cbc:Name>{ln.name}</cbc:Name><cac:SellersItemIdentification>"
            f"<cbc:ID>{ln.seller_id}</cbc:ID></cac:SellersItemIdentification>"
            f"{_category('ClassifiedTaxCategory', ln.category, ln.percent)}</cac:Item>"
            f"<cac:Price><cbc:PriceAmount{cur}>{ln.price}</cbc:PriceAmount>{base}</cac:Price>"
            "</cac:InvoiceLine>")
    out.append("</Invoice>\n")
    return "".join(out).encode("utf-8")
