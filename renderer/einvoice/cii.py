"""UN/CEFACT Cross Industry Invoice D16B (Factur-X profile EN 16931, XRechnung CII).

Written by string concatenation in the order of the XML Schema: a general XML library
costs 15-25 ms per invoice, this costs a fraction of a millisecond, and the per-invoice
XSD check (:mod:`.xsd`) proves the order and shape. Every value arrives escaped and
formatted from :mod:`.model`.
"""

from __future__ import annotations

from invoicer.renderer.einvoice.model import Document, Party, date102

_HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n'
         '<rsm:CrossIndustryInvoice '
         'xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100" '
         'xmlns:qdt="urn:un:unece:uncefact:data:standard:QualifiedDataType:100" '
         'xmlns:ram="urn:un:unece:uncefact:data:standard:'
         'ReusableAggregateBusinessInformationEntity:100" '
         'xmlns:udt="urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100">')


def _date(tag: str, value) -> str:
    return (f'<ram:{tag}><udt:DateTimeString format="102">{date102(value)}'
            f'</udt:DateTimeString></ram:{tag}>')


def _party(tag: str, p: Party) -> str:
    out = [f"<ram:{tag}>"]
    if p.identifier:
        out.append(f"<ram:ID>{p.identifier}</ram:ID>")
    out.append(f"<ram:Name>{p.name}</ram:Name>")
    if p.legal_id:
        out.append(f"<ram:SpecifiedLegalOrganization><ram:ID>{p.legal_id}</ram:ID>"
                   "</ram:SpecifiedLegalOrganization>")
    if p.contact_name:
        out.append(f"<ram:DefinedTradeContact><ram:PersonName>{p.contact_name}"
                   "</ram:PersonName>")
        if p.contact_phone:
            out.append("<ram:TelephoneUniversalCommunication><ram:CompleteNumber>"
                       f"{p.contact_phone}</ram:CompleteNumber>"
                       "</ram:TelephoneUniversalCommunication>")
        if p.contact_email:
            out.append("<ram:EmailURIUniversalCommunication><ram:URIID>"
                       f"{p.contact_email}</ram:URIID></ram:EmailURIUniversalCommunication>")
        out.append("</ram:DefinedTradeContact>")
    out.append("<ram:PostalTradeAddress>")
    if p.postcode:
        out.append(f"<ram:PostcodeCode>{p.postcode}</ram:PostcodeCode>")
    for tag_, line in zip(("LineOne", "LineTwo", "LineThree"), p.lines, strict=False):
        out.append(f"<ram:{tag_}>{line}</ram:{tag_}>")
    out.append(f"<ram:CityName>{p.city}</ram:CityName><ram:CountryID>{p.country}"
               "</ram:CountryID></ram:PostalTradeAddress>")
    if p.endpoint_id:
        out.append(f'<ram:URIUniversalCommunication><ram:URIID schemeID="{p.endpoint_scheme}">'
                   f"{p.endpoint_id}</ram:URIID></ram:URIUniversalCommunication>")
    if p.vat_id:
        out.append(f'<ram:SpecifiedTaxRegistration><ram:ID schemeID="VA">{p.vat_id}</ram:ID>'
                   "</ram:SpecifiedTaxRegistration>")
    out.append(f"</ram:{tag}>")
    return "".join(out)


def write(doc: Document, guideline: str, process: str | None) -> bytes:
    """The CII XML of ``doc`` under specification identifier ``guideline`` (BT-24)."""
    out = [_HEAD, "<rsm:ExchangedDocumentContext>"]
    if process:
        out.append("<ram:BusinessProcessSpecifiedDocumentContextParameter>"
                   f"<ram:ID>{process}</ram:ID>"
                   "</ram:BusinessProcessSpecifiedDocumentContextParameter>")
    out.append(f"<ram:GuidelineSpecifiedDocumentContextParameter><ram:ID>{guideline}</ram:ID>"
               "</ram:GuidelineSpecifiedDocumentContextParameter>"
               "</rsm:ExchangedDocumentContext><rsm:ExchangedDocument>"
               f"<ram:ID>{doc.number}</ram:ID><ram:TypeCode>380</ram:TypeCode>"
               f"{_date('IssueDateTime', doc.issue_date)}")
    for note in doc.notes:
        out.append(f"<ram:IncludedNote><ram:Content>{note}</ram:Content></ram:IncludedNote>")
    out.append("</rsm:ExchangedDocument><rsm:SupplyChainTradeTransaction>")
    cur = doc.currency
    for ln in doc.lines:
        rate = (f"<ram:RateApplicablePercent>{ln.percent}</ram:RateApplicablePercent>"
                if ln.percent is not None else "")
        base = (f'<ram:BasisQuantity unitCode="{ln.unit}">{ln.base_quantity}'
                "</ram:BasisQuantity>" if ln.base_quantity else "")
        out.append(
            "<ram:IncludedSupplyChainTradeLineItem><ram:AssociatedDocumentLineDocument>"
            f"<ram:LineID>{ln.id}</ram:LineID><ram:IncludedNote><ram:Content>{ln.note}"
            "</ram:Content></ram:IncludedNote></ram:AssociatedDocumentLineDocument>"
            f"<ram:SpecifiedTradeProduct><ram:SellerAssignedID>{ln.seller_id}"
            f"</ram:SellerAssignedID><ram:Name>{ln.name}</ram:Name></ram:SpecifiedTradeProduct>"
            "<ram:SpecifiedLineTradeAgreement><ram:NetPriceProductTradePrice>"
            f"<ram:ChargeAmount>{ln.price}</ram:ChargeAmount>{base}"
            "</ram:NetPriceProductTradePrice></ram:SpecifiedLineTradeAgreement>"
            f'<ram:SpecifiedLineTradeDelivery><ram:BilledQuantity unitCode="{ln.unit}">'
            f"{ln.quantity}</ram:BilledQuantity></ram:SpecifiedLineTradeDelivery>"
            "<ram:SpecifiedLineTradeSettlement><ram:ApplicableTradeTax>"
            f"<ram:TypeCode>VAT</ram:TypeCode><ram:CategoryCode>{ln.category}</ram:CategoryCode>"
            f"{rate}</ram:ApplicableTradeTax>"
            "<ram:SpecifiedTradeSettlementLineMonetarySummation>"
            f"<ram:LineTotalAmount>{ln.net}</ram:LineTotalAmount>"
            "</ram:SpecifiedTradeSettlementLineMonetarySummation>"
            "</ram:SpecifiedLineTradeSettlement></ram:IncludedSupplyChainTradeLineItem>")
    out.append("<ram:ApplicableHeaderTradeAgreement>")
    if doc.buyer_reference:
        out.append(f"<ram:BuyerReference>{doc.buyer_reference}</ram:BuyerReference>")
    out.append(_party("SellerTradeParty", doc.seller))
    out.append(_party("BuyerTradeParty", doc.buyer))
    out.append("</ram:ApplicableHeaderTradeAgreement>")
    if doc.deliver_to_country:
        out.append("<ram:ApplicableHeaderTradeDelivery><ram:ShipToTradeParty>"
                   f"<ram:PostalTradeAddress><ram:CountryID>{doc.deliver_to_country}"
                   "</ram:CountryID></ram:PostalTradeAddress></ram:ShipToTradeParty>"
                   "</ram:ApplicableHeaderTradeDelivery>")
    else:
        out.append("<ram:ApplicableHeaderTradeDelivery/>")
    pay = doc.payment
    out.append("<ram:ApplicableHeaderTradeSettlement>")
    if pay.creditor_id:
        out.append(f"<ram:CreditorReferenceID>{pay.creditor_id}</ram:CreditorReferenceID>")
    if pay.remittance:
        out.append(f"<ram:PaymentReference>{pay.remittance}</ram:PaymentReference>")
    out.append(f"<ram:InvoiceCurrencyCode>{cur}</ram:InvoiceCurrencyCode>"
               "<ram:SpecifiedTradeSettlementPaymentMeans>"
               f"<ram:TypeCode>{pay.code}</ram:TypeCode>"
               f"<ram:Information>{pay.text}</ram:Information>")
    if pay.debited_iban:
        out.append("<ram:PayerPartyDebtorFinancialAccount>"
                   f"<ram:IBANID>{pay.debited_iban}</ram:IBANID>"
                   "</ram:PayerPartyDebtorFinancialAccount>")
    if pay.payee_iban:
        out.append("<ram:PayeePartyCreditorFinancialAccount>"
                   f"<ram:IBANID>{pay.payee_iban}</ram:IBANID>"
                   "</ram:PayeePartyCreditorFinancialAccount>")
    if pay.payee_bic:
        out.append("<ram:PayeeSpecifiedCreditorFinancialInstitution>"
                   f"<ram:BICID>{pay.payee_bic}</ram:BICID>"
                   "</ram:PayeeSpecifiedCreditorFinancialInstitution>")
    out.append("</ram:SpecifiedTradeSettlementPaymentMeans>")
    for b in doc.breakdown:
        out.append(f"<ram:ApplicableTradeTax><ram:CalculatedAmount>{b.tax}"
                   "</ram:CalculatedAmount><ram:TypeCode>VAT</ram:TypeCode>")
        if b.reason:
            out.append(f"<ram:ExemptionReason>{b.reason}</ram:ExemptionReason>")
        out.append(f"<ram:BasisAmount>{b.basis}</ram:BasisAmount>"
                   f"<ram:CategoryCode>{b.category}</ram:CategoryCode>")
        if b.reason_code:
            out.append(f"<ram:ExemptionReasonCode>{b.reason_code}</ram:ExemptionReasonCode>")
        if b.percent is not None:
            out.append(f"<ram:RateApplicablePercent>{b.percent}</ram:RateApplicablePercent>")
        out.append("</ram:ApplicableTradeTax>")
    out.append(f"<ram:BillingSpecifiedPeriod>{_date('StartDateTime', doc.period_start)}"
               f"{_date('EndDateTime', doc.period_end)}</ram:BillingSpecifiedPeriod>"
               f"<ram:SpecifiedTradePaymentTerms><ram:Description>{doc.terms}"
               f"</ram:Description>{_date('DueDateDateTime', doc.due_date)}")
    if pay.mandate:
        out.append(f"<ram:DirectDebitMandateID>{pay.mandate}</ram:DirectDebitMandateID>")
    out.append("</ram:SpecifiedTradePaymentTerms>"
               "<ram:SpecifiedTradeSettlementHeaderMonetarySummation>"
               f"<ram:LineTotalAmount>{doc.line_total}</ram:LineTotalAmount>"
               f"<ram:TaxBasisTotalAmount>{doc.line_total}</ram:TaxBasisTotalAmount>"
               f'<ram:TaxTotalAmount currencyID="{cur}">{doc.tax_total}</ram:TaxTotalAmount>'
               f"<ram:GrandTotalAmount>{doc.grand_total}</ram:GrandTotalAmount>"
               f"<ram:DuePayableAmount>{doc.due_amount}</ram:DuePayableAmount>"
               "</ram:SpecifiedTradeSettlementHeaderMonetarySummation>"
               "</ram:ApplicableHeaderTradeSettlement>"
               "</rsm:SupplyChainTradeTransaction></rsm:CrossIndustryInvoice>\n")
    return "".join(out).encode("utf-8")
