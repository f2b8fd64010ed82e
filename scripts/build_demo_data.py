#!/usr/bin/env python3
"""Build Attune's bundled demo data set, data/demo/online_retail.attune.gz, from UCI Online Retail I.

Source
    "Online Retail" by Daqing Chen, UCI Machine Learning Repository, https://doi.org/10.24432/C5BW33,
    licensed CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/). Transactions of a UK-based online
    gift shop from 2010-12-01 to 2011-12-09; columns InvoiceNo, StockCode, Description, Quantity,
    InvoiceDate, UnitPrice, CustomerID, Country. Invoice times have no zone; they are treated as UTC.

Usage
    python3 scripts/build_demo_data.py [SOURCE.csv.gz] [OUTPUT.attune.gz]
    (defaults: /work/shared/data/online_retail/online_retail_I.csv.gz, data/demo/online_retail.attune.gz)
    Python 3 standard library only. The output is deterministic: the same source gives the same bytes.

What is dropped, and why (nothing is invented; everything kept is the source's own value)
    1. Rows whose StockCode is not merchandise but a charge, fee, adjustment or voucher:
       POST (postage), DOT (dotcom postage), C2 (carriage), 23444 ("Next Day Carriage", a delivery charge
       under a product-like code), 23702 ("High Resolution Image", an image licensing charge),
       M and m (manual adjustments), D (discounts), S (samples), B (bad-debt adjustments, invoices A*),
       BANK CHARGES, AMAZONFEE, CRUK (charity commission) and gift_0001_* (gift vouchers: stored value,
       not goods). Recommending them would be meaningless.
    2. Rows with UnitPrice <= 0: stock-keeping notes ("check", "damaged", "found", "?"), free samples
       and write-offs, not sales. This also removes every non-cancellation row with a negative quantity
       (all of them have price 0 and no customer).
    3. Rows with a price below one penny (three PADS rows at 0.001): not representable in GBP minor units.
    4. Rows with quantity 0 or an empty description (none remain after rules 1-3; checked anyway).
    5. Invoices left with no rows after 1-4.
    Cancellations (InvoiceNo starting with "C", negative quantities) are kept as returns.

What is merged or normalised
    - Repeated rows of one invoice with the same StockCode and unit price are merged by summing the
      quantity (the shop's system wrote one row per scan); the merged line keeps the first row's position.
    - 43 invoices span two consecutive minutes (their rows straddle a minute boundary); the invoice's
      time is its earliest row's time.
    - CustomerID "17850.0" becomes "17850". An invoice without CustomerID is a guest order.
    - Item description: the most common description among the item's kept rows (ties: first seen).
      Item price: the modal unit price of the item's kept sale rows (ties: the lower price); items only
      ever seen in cancellations use their cancellation rows.
    - Customer country: the most common country among the customer's kept invoices (ties: first seen);
      every invoice also keeps its own country.

Output format, version 1 (UTF-8 text, one record per line, fields separated by TAB, gzip level 9)
    line 1   #attune-demo<TAB>1<TAB>source=...<TAB>licence=...<TAB>...      header: magic, format version
    K<TAB>country                                   country table; referred to by 0-based index
    I<TAB>stock code<TAB>price in pence<TAB>description       item table; 0-based index, sorted by code
    U<TAB>customer id<TAB>country index                        customers, sorted numerically
    O<TAB>minutes<TAB>invoice<TAB>customer<TAB>country index<TAB>lines
        one invoice; sorted by time, then by first appearance in the source. minutes = minutes since the
        previous O record (the first: since 1970-01-01T00:00Z). customer is empty for guests. lines are
        separated by a space, each `ITEMxQUANTITY` or `ITEMxQUANTITY@PENCE` (ITEM an item index; the
        price is written only when it differs from the item's price). Quantities are positive; an invoice
        whose number starts with "C" is a cancellation, i.e. a return of those quantities.
    T<TAB>items<TAB>customers<TAB>invoices<TAB>lines       totals, last line (detects truncation)
"""

import collections
import csv
import datetime
import gzip
import io
import os
import re
import sys

FORMAT_VERSION = 1
DEFAULT_SOURCE = "/work/shared/data/online_retail/online_retail_I.csv.gz"
DEFAULT_OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "demo", "online_retail.attune.gz")

NON_MERCHANDISE_CODES = {
    "POST", "DOT", "C2", "23444", "23702", "M", "m", "D", "S", "B", "BANK CHARGES", "AMAZONFEE", "CRUK",
}
NON_MERCHANDISE_PATTERN = re.compile(r"^gift_\d+_\d+$")
EPOCH = datetime.datetime(1970, 1, 1)


def parse_pence(text):
    """Exact decimal text to integer pence; None when it has sub-penny precision."""
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0")
    if len(fraction) > 2:
        return None
    sign = -1 if whole.startswith("-") else 1
    whole = whole.lstrip("-") or "0"
    return sign * (int(whole) * 100 + int(fraction.ljust(2, "0") or "0"))


def parse_quantity(text):
    value = float(text)
    if value != int(value):
        raise ValueError(f"fractional quantity {text!r}")
    return int(value)


def minutes_since_epoch(text):
    moment = datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    seconds = int((moment - EPOCH).total_seconds())
    if seconds % 60:
        raise ValueError(f"invoice time {text!r} is not on a whole minute")
    return seconds // 60


def drop_reason(row):
    code = row["StockCode"]
    if code in NON_MERCHANDISE_CODES or NON_MERCHANDISE_PATTERN.match(code):
        return "non-merchandise stock code"
    pence = parse_pence(row["UnitPrice"])
    if pence is None:
        return "price below one penny"
    if pence <= 0:
        return "unit price <= 0"
    if parse_quantity(row["Quantity"]) == 0:
        return "quantity 0"
    if not row["Description"].strip():
        return "missing description"
    return None


def most_common_first_seen(counter, first_seen):
    """The most common key; ties go to the key seen first."""
    return min(counter, key=lambda key: (-counter[key], first_seen[key]))


def build(source_path):
    stats = collections.Counter()
    drop_reasons = collections.Counter()
    invoices = {}  # invoice number -> dict(order, minutes, customer, country, lines: {(code, pence): qty})
    item_rows = []  # (code, description, pence, is_cancellation, row index) of every kept row
    all_invoice_numbers = set()
    all_customers = set()
    all_codes = set()
    with gzip.open(source_path, "rt", encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        expected = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]
        if reader.fieldnames != expected:
            raise SystemExit(f"unexpected header {reader.fieldnames}")
        for row_index, row in enumerate(reader):
            stats["rows read"] += 1
            number = row["InvoiceNo"]
            all_invoice_numbers.add(number)
            all_codes.add(row["StockCode"])
            customer = row["CustomerID"]
            if customer:
                customer = str(int(float(customer)))
                all_customers.add(customer)
            reason = drop_reason(row)
            if reason:
                drop_reasons[reason] += 1
                continue
            quantity = parse_quantity(row["Quantity"])
            is_cancellation = number.startswith("C")
            if (quantity < 0) != is_cancellation:
                drop_reasons["quantity sign does not match invoice kind"] += 1
                continue
            minutes = minutes_since_epoch(row["InvoiceDate"])
            invoice = invoices.get(number)
            if invoice is None:
                invoice = {"order": row_index, "minutes": minutes, "customer": customer, "country": row["Country"],
                           "lines": {}}
                invoices[number] = invoice
            elif invoice["customer"] != customer or invoice["country"] != row["Country"]:
                raise SystemExit(f"invoice {number} has rows of different customers or countries")
            invoice["minutes"] = min(invoice["minutes"], minutes)
            key = (row["StockCode"], parse_pence(row["UnitPrice"]))
            lines = invoice["lines"]
            if key in lines:
                stats["rows merged into an earlier line"] += 1
            lines[key] = lines.get(key, 0) + abs(quantity)
            item_rows.append((row["StockCode"], row["Description"], key[1], is_cancellation, row_index))
    return stats, drop_reasons, invoices, item_rows, all_invoice_numbers, all_customers, all_codes


def main():
    source_path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_SOURCE
    output_path = os.path.normpath(sys.argv[2] if len(sys.argv) > 2 else DEFAULT_OUTPUT)
    stats, drop_reasons, invoices, item_rows, all_invoice_numbers, all_customers, all_codes = build(source_path)

    # Items: most common description, modal sale price (cancellations only when never sold).
    descriptions = collections.defaultdict(collections.Counter)
    description_first_seen = collections.defaultdict(dict)
    sale_prices = collections.defaultdict(collections.Counter)
    return_prices = collections.defaultdict(collections.Counter)
    for code, description, pence, is_cancellation, row_index in item_rows:
        descriptions[code][description] += 1
        description_first_seen[code].setdefault(description, row_index)
        (return_prices if is_cancellation else sale_prices)[code][pence] += 1
    codes = sorted(descriptions)
    item_index = {code: index for index, code in enumerate(codes)}
    item_price = {}
    for code in codes:
        prices = sale_prices[code] or return_prices[code]
        item_price[code] = min(prices, key=lambda pence: (-prices[pence], pence))

    # Invoices in time order, then source order.
    ordered = sorted(invoices.items(), key=lambda entry: (entry[1]["minutes"], entry[1]["order"]))

    # Countries and customers.
    countries = sorted({invoice["country"] for _, invoice in ordered})
    country_index = {country: index for index, country in enumerate(countries)}
    customer_countries = collections.defaultdict(collections.Counter)
    customer_country_first_seen = collections.defaultdict(dict)
    for position, (_, invoice) in enumerate(ordered):
        if invoice["customer"]:
            customer_countries[invoice["customer"]][invoice["country"]] += 1
            customer_country_first_seen[invoice["customer"]].setdefault(invoice["country"], position)
    customers = sorted(customer_countries, key=int)
    customers_with_several_countries = sum(1 for c in customers if len(customer_countries[c]) > 1)

    text = io.StringIO()
    text.write("\t".join([
        "#attune-demo", str(FORMAT_VERSION),
        "source=UCI Machine Learning Repository: Online Retail (Daqing Chen), https://doi.org/10.24432/C5BW33",
        "licence=CC BY 4.0, https://creativecommons.org/licenses/by/4.0/",
        "changes=non-merchandise and unusable rows dropped, repeated lines merged, see scripts/build_demo_data.py",
        "units=prices in GBP pence, times in minutes since 1970-01-01T00:00Z (source times read as UTC)",
    ]) + "\n")
    for country in countries:
        text.write(f"K\t{country}\n")
    for code in codes:
        description = most_common_first_seen(descriptions[code], description_first_seen[code])
        if "\t" in description or "\n" in description or "\t" in code:
            raise SystemExit(f"item {code!r} has a tab or newline")
        text.write(f"I\t{code}\t{item_price[code]}\t{description}\n")
    for customer in customers:
        country = most_common_first_seen(customer_countries[customer], customer_country_first_seen[customer])
        text.write(f"U\t{customer}\t{country_index[country]}\n")
    previous_minutes = 0
    line_count = 0
    sale_invoices = return_invoices = sale_lines = return_lines = 0
    for number, invoice in ordered:
        parts = []
        for (code, pence), quantity in invoice["lines"].items():
            entry = f"{item_index[code]}x{quantity}"
            if pence != item_price[code]:
                entry += f"@{pence}"
            parts.append(entry)
        line_count += len(parts)
        if number.startswith("C"):
            return_invoices += 1
            return_lines += len(parts)
        else:
            sale_invoices += 1
            sale_lines += len(parts)
        delta = invoice["minutes"] - previous_minutes
        previous_minutes = invoice["minutes"]
        text.write(f"O\t{delta}\t{number}\t{invoice['customer']}\t{country_index[invoice['country']]}\t{' '.join(parts)}\n")
    text.write(f"T\t{len(codes)}\t{len(customers)}\t{len(ordered)}\t{line_count}\n")

    os.makedirs(os.path.dirname(output_path), exist_ok=True)
    payload = text.getvalue().encode("utf-8")
    # mtime=0 and no file name keep the output byte-for-byte reproducible.
    with open(output_path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=raw, mtime=0) as compressed:
            compressed.write(payload)

    kept_rows = len(item_rows)
    print(f"source rows:        {stats['rows read']:>8}")
    print(f"rows kept:          {kept_rows:>8}  ({stats['rows merged into an earlier line']} merged into an earlier line of their invoice)")
    print(f"rows dropped:       {stats['rows read'] - kept_rows:>8}")
    for reason, count in sorted(drop_reasons.items(), key=lambda entry: -entry[1]):
        print(f"  {reason + ':':<42}{count:>8}")
    print(f"invoices kept:      {len(ordered):>8}  ({sale_invoices} sales, {return_invoices} cancellations/returns)")
    print(f"invoices dropped:   {len(all_invoice_numbers) - len(ordered):>8}  (no usable row left)")
    print(f"order lines kept:   {line_count:>8}  ({sale_lines} on sales, {return_lines} on returns)")
    print(f"items kept:         {len(codes):>8}  (dropped {len(all_codes) - len(codes)} stock codes)")
    print(f"customers kept:     {len(customers):>8}  (dropped {len(all_customers) - len(customers)}; "
          f"{customers_with_several_countries} bought from more than one country)")
    print(f"guest invoices:     {sum(1 for _, invoice in ordered if not invoice['customer']):>8}")
    print(f"countries:          {len(countries):>8}")
    print(f"text size:          {len(payload):>8} bytes")
    print(f"written:            {os.path.getsize(output_path):>8} bytes  {output_path}")


if __name__ == "__main__":
    main()
