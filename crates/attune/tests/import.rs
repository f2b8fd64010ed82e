//! `attune import`: Merchant Center feeds (CSV, TSV, JSONL, gzip) and event files (CSV, JSONL) imported
//! into a real store (SQLite, or PostgreSQL with `ATTUNE_TEST_BACKEND=postgres`); bad rows are rejected with
//! their line numbers while the good ones are stored, and importing an event file again stores nothing twice.

mod process;

use attune::import::{Format, ImportSummary, NoProgress, import_events, import_items};
use attune_core::input::ScalarValue;
use attune_core::{Availability, EventKind, ItemId, Tenant, TenantId, Timestamp, UserId};
use attune_store::{Store, TimelineQuery};
use process::TestData;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

struct Fixture {
    store: Arc<dyn Store>,
    /// Last, so that the store closes before its data goes.
    data: TestData,
    tenant: TenantId,
}

fn fixture() -> Fixture {
    let data = TestData::new();
    let store = data.open();
    let tenant = TenantId::parse_slug("shop").unwrap();
    store
        .create_tenant(&Tenant { id: tenant.clone(), name: "Shop".into(), created_at: Timestamp::now() }, b"secret")
        .unwrap();
    Fixture { store, data, tenant }
}

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn rejected_lines(summary: &ImportSummary) -> Vec<usize> {
    summary.rejected.iter().map(|r| r.line).collect()
}

fn reason_at(summary: &ImportSummary, line: usize) -> &str {
    &summary.rejected.iter().find(|r| r.line == line).unwrap_or_else(|| panic!("no rejection at line {line}")).reason
}

fn item(f: &Fixture, id: &str) -> Option<attune_core::Item> {
    f.store.item(&f.tenant, &ItemId::parse(id).unwrap()).unwrap()
}

/// The CSV and TSV fixtures hold the same six products: three good, then a bad price (line 4), a missing
/// id (line 5) and a negative stock (line 6).
fn assert_feed_imported(f: &Fixture, summary: &ImportSummary) {
    assert_eq!(summary.rows_read, 6, "{}", summary.render());
    assert_eq!(summary.accepted, 3, "{}", summary.render());
    assert_eq!(rejected_lines(summary), [4, 5, 6], "{}", summary.render());
    assert!(reason_at(summary, 4).starts_with("price: `abc`"), "{}", reason_at(summary, 4));
    assert!(reason_at(summary, 5).contains("`id` is required"), "{}", reason_at(summary, 5));
    assert!(reason_at(summary, 6).starts_with("stock_quantity:"), "{}", reason_at(summary, 6));
    assert_eq!(summary.unmapped_columns, ["shipping_label"]);
    assert_eq!(f.store.stats(&f.tenant).unwrap().items, 3);

    let mug = item(f, "MUG-1").expect("MUG-1 stored");
    assert_eq!(mug.title, "Stoneware mug, blue");
    assert_eq!(mug.price.unwrap().to_string(), "12.50 GBP");
    assert_eq!(mug.category_path, ["Home & Garden", "Kitchen", "Mugs"]);
    assert_eq!(mug.brand.as_deref(), Some("Hearth & Co"));
    assert_eq!(mug.image_url.as_deref(), Some("https://shop.example/i/mug-1.jpg"));
    assert_eq!(mug.stock_quantity, Some(40));
    assert_eq!(mug.item_group_id.as_deref(), Some("MUG"));
    for (name, value) in [
        ("color", "blue"),
        ("size", "350 ml"),
        ("material", "stoneware"),
        ("sale_price", "9.99 GBP"),
        ("google_product_category", "Home & Garden > Kitchen & Dining > Tableware"),
    ] {
        assert_eq!(mug.attribute(name).as_deref(), Some(value), "attribute {name}");
    }
    assert_eq!(mug.attribute("gender"), None, "empty values are absent");
    assert_eq!(item(f, "MUG-2").unwrap().availability, Availability::OutOfStock);
    let lamp = item(f, "LAMP-1").expect("LAMP-1 stored");
    assert_eq!(lamp.title, "Desk lamp \"Arc\"");
    assert_eq!(lamp.availability, Availability::Preorder);
    assert_eq!(lamp.category_path, ["Home & Garden", "Lighting", "Lamps"], "google_product_category as the path");
    assert_eq!(lamp.attribute("shipping_label").as_deref(), Some("oversize"));
    assert!(item(f, "TEE-1").is_none() && item(f, "SOCK-1").is_none());
}

#[test]
fn imports_a_merchant_center_csv_feed() {
    let f = fixture();
    let summary = import_items(f.store.as_ref(), &f.tenant, &fixture_path("feed.csv"), None, &NoProgress).unwrap();
    assert_feed_imported(&f, &summary);
    assert_eq!(item(&f, "LAMP-1").unwrap().description, "Adjustable arm.\nBulb not included.");
    let text = summary.render();
    assert!(text.contains("6 rows read, 3 items stored, 3 rejected"), "{text}");
    assert!(text.contains("unmapped columns kept as attributes: shipping_label"), "{text}");
    assert!(text.contains("line 4: price: `abc`"), "{text}");

    // Importing again replaces the items instead of adding new ones.
    let again = import_items(f.store.as_ref(), &f.tenant, &fixture_path("feed.csv"), None, &NoProgress).unwrap();
    assert_eq!((again.accepted, again.replaced), (3, 3));
    assert_eq!(f.store.stats(&f.tenant).unwrap().items, 3);
}

#[test]
fn imports_a_tsv_feed_also_gzipped() {
    let f = fixture();
    let summary = import_items(f.store.as_ref(), &f.tenant, &fixture_path("feed.tsv"), None, &NoProgress).unwrap();
    assert_eq!(summary.format, Format::Tsv);
    assert_feed_imported(&f, &summary);

    let g = fixture();
    let gzipped = g.data.directory.path().join("feed.tsv.gz");
    let mut encoder = flate2::write::GzEncoder::new(std::fs::File::create(&gzipped).unwrap(), Default::default());
    encoder.write_all(&std::fs::read(fixture_path("feed.tsv")).unwrap()).unwrap();
    encoder.finish().unwrap();
    let summary = import_items(g.store.as_ref(), &g.tenant, &gzipped, None, &NoProgress).unwrap();
    assert_feed_imported(&g, &summary);
}

#[test]
fn imports_a_json_lines_feed() {
    let f = fixture();
    let summary = import_items(f.store.as_ref(), &f.tenant, &fixture_path("feed.jsonl"), None, &NoProgress).unwrap();
    assert_eq!(summary.rows_read, 6, "blank lines are not rows");
    assert_eq!(summary.accepted, 2, "{}", summary.render());
    assert_eq!(rejected_lines(&summary), [3, 4, 5, 7], "{}", summary.render());
    assert!(reason_at(&summary, 3).starts_with("price:"));
    assert!(reason_at(&summary, 7).starts_with("not a JSON object"));
    assert_eq!(summary.unmapped_columns, ["shipping_label"]);
    let mug = item(&f, "MUG-1").unwrap();
    assert_eq!(mug.stock_quantity, Some(40));
    assert_eq!(mug.attributes["shipping_label"], ScalarValue::Text("fragile".into()));
    assert_eq!(item(&f, "LAMP-1").unwrap().category_path, ["Home & Garden", "Lighting", "Lamps"]);
}

#[test]
fn large_feeds_are_written_in_chunks_and_bad_rows_keep_their_lines() {
    let f = fixture();
    let path = f.data.directory.path().join("big.csv");
    let mut text = String::from("id,title,price,quantity\n");
    let mut bad_lines = Vec::new();
    for index in 0..4_500 {
        let line = index + 2;
        if index % 1_000 == 999 {
            text.push_str(&format!("SKU-{index},Broken,{index} pounds,1\n"));
            bad_lines.push(line);
        } else {
            text.push_str(&format!("SKU-{index},Product {index},{}.99 GBP,{}\n", index % 50, index % 7));
        }
    }
    std::fs::write(&path, text).unwrap();
    let summary = import_items(f.store.as_ref(), &f.tenant, &path, None, &NoProgress).unwrap();
    assert_eq!(summary.rows_read, 4_500);
    assert_eq!(summary.accepted, 4_496);
    assert_eq!(rejected_lines(&summary), bad_lines);
    assert_eq!(f.store.stats(&f.tenant).unwrap().items, 4_496);
}

#[test]
fn unusable_files_are_errors() {
    let f = fixture();
    let directory = f.data.directory.path();
    let missing =
        import_items(f.store.as_ref(), &f.tenant, &directory.join("missing.csv"), None, &NoProgress).unwrap_err();
    assert!(format!("{missing:#}").contains("cannot open"), "{missing:#}");

    let unknown_extension = directory.join("feed.xml");
    std::fs::write(&unknown_extension, "<rss/>").unwrap();
    let error = import_items(f.store.as_ref(), &f.tenant, &unknown_extension, None, &NoProgress).unwrap_err();
    assert!(error.to_string().contains("--format"), "{error}");

    // A tab-separated feed read as CSV has one column named "id\ttitle\t…", hence no `id` column.
    let error = import_items(f.store.as_ref(), &f.tenant, &fixture_path("feed.tsv"), Some(Format::Csv), &NoProgress)
        .unwrap_err();
    assert!(error.to_string().contains("no `id` column"), "{error}");
    let error = import_items(f.store.as_ref(), &f.tenant, &fixture_path("feed.csv"), Some(Format::Jsonl), &NoProgress)
        .unwrap_err();
    assert!(error.to_string().contains("JSON lines"), "{error}");
    let error = import_events(f.store.as_ref(), &f.tenant, &fixture_path("feed.csv"), None, &NoProgress).unwrap_err();
    assert!(error.to_string().contains("unknown columns"), "{error}");
    assert_eq!(f.store.stats(&f.tenant).unwrap().items, 0);
}

#[test]
fn imports_events_csv_merging_order_rows() {
    let f = fixture();
    let summary = import_events(f.store.as_ref(), &f.tenant, &fixture_path("events.csv"), None, &NoProgress).unwrap();
    assert_eq!(summary.rows_read, 7);
    assert_eq!(summary.accepted, 4, "{}", summary.render());
    assert_eq!(rejected_lines(&summary), [7]);
    assert!(reason_at(&summary, 7).starts_with("dwell_ms:"), "{}", reason_at(&summary, 7));

    let purchase = f.store.event_by_id(&f.tenant, "ev-3").unwrap().expect("ev-3 stored").event;
    let EventKind::Purchase { order_id, lines } = &purchase.kind else { panic!("not a purchase: {purchase:?}") };
    assert_eq!(order_id.as_str(), "ord-1");
    let lines: Vec<(&str, u32, i64)> =
        lines.iter().map(|l| (l.item_id.as_str(), l.quantity, l.unit_price.minor_units)).collect();
    assert_eq!(lines, [("MUG-1", 2, 1250), ("LAMP-1", 1, 4900), ("MUG-2", 1, 1250)]);
    assert_eq!(purchase.context["country"], ScalarValue::Text("United Kingdom".into()));
    let returned = f.store.event_by_id(&f.tenant, "ev-5").unwrap().unwrap().event;
    assert!(matches!(&returned.kind, EventKind::Return { lines, .. } if lines.len() == 1 && lines[0].quantity == 1));

    let retry = import_events(f.store.as_ref(), &f.tenant, &fixture_path("events.csv"), None, &NoProgress).unwrap();
    assert_eq!((retry.accepted, retry.duplicates), (0, 4));
    assert_eq!(f.store.stats(&f.tenant).unwrap().events, 4);
}

#[test]
fn retrying_an_events_jsonl_import_counts_duplicates() {
    let f = fixture();
    let path = fixture_path("events.jsonl");
    let first = import_events(f.store.as_ref(), &f.tenant, &path, None, &NoProgress).unwrap();
    assert_eq!(first.rows_read, 5);
    assert_eq!((first.accepted, first.duplicates), (3, 1), "{}", first.render());
    assert_eq!(rejected_lines(&first), [3]);
    assert!(reason_at(&first, 3).contains("user_id"), "{}", reason_at(&first, 3));

    let retry = import_events(f.store.as_ref(), &f.tenant, &path, None, &NoProgress).unwrap();
    assert_eq!((retry.accepted, retry.duplicates, retry.rejected_count), (0, 4, 1));
    assert!(retry.render().contains("0 events stored, 4 duplicates already stored, 1 rejected"), "{}", retry.render());
    assert_eq!(f.store.stats(&f.tenant).unwrap().events, 3);
    let timeline = f
        .store
        .user_timeline(&f.tenant, &UserId::parse("u1").unwrap(), &TimelineQuery { limit: 10, ..Default::default() })
        .unwrap();
    assert_eq!(timeline.events.len(), 2);
}
