//! End-to-end behaviour of the search engine on small catalogs built here, and on the real fashion catalog
//! when `../shared/data` is present.

use std::collections::BTreeMap;

use attune_core::input::{AmountInput, ScalarValue, TimeInput};
use attune_core::{Item, ItemInput, Timestamp};
use attune_search::{
    Autocomplete, Filters, Retrieval, SearchConfig, SearchEngine, SearchMode, SearchRequest, ShopperProfile, SortOrder,
};
use proptest::prelude::*;

struct Spec {
    id: &'static str,
    title: &'static str,
    brand: &'static str,
    category: &'static [&'static str],
    price: &'static str,
    colour: &'static str,
    size: &'static str,
    gender: &'static str,
}

const CATALOG: &[Spec] = &[
    Spec {
        id: "j1",
        title: "Padded Winter Jacket",
        brand: "Adidas",
        category: &["Men", "Clothing", "Jackets"],
        price: "89.99",
        colour: "Black",
        size: "M",
        gender: "Men",
    },
    Spec {
        id: "j2",
        title: "Rain Jacket",
        brand: "Nike",
        category: &["Women", "Clothing", "Jackets"],
        price: "59.00",
        colour: "Red",
        size: "S",
        gender: "Women",
    },
    Spec {
        id: "j3",
        title: "Denim Jacket",
        brand: "Levis",
        category: &["Men", "Clothing", "Jackets"],
        price: "75.00",
        colour: "Blue",
        size: "L",
        gender: "Men",
    },
    Spec {
        id: "s1",
        title: "Running Shoes",
        brand: "Adidas",
        category: &["Men", "Shoes", "Sneakers"],
        price: "120.00",
        colour: "White",
        size: "42",
        gender: "Men",
    },
    Spec {
        id: "s2",
        title: "Running Shoes Pro",
        brand: "Nike",
        category: &["Men", "Shoes", "Sneakers"],
        price: "140.00",
        colour: "Black",
        size: "43",
        gender: "Men",
    },
    Spec {
        id: "s3",
        title: "Leather Ballerinas",
        brand: "Zara",
        category: &["Women", "Shoes", "Flats"],
        price: "35.00",
        colour: "Red",
        size: "38",
        gender: "Women",
    },
    Spec {
        id: "w1",
        title: "Wool Jumper",
        brand: "Uniqlo",
        category: &["Women", "Clothing", "Knitwear"],
        price: "39.90",
        colour: "Grey",
        size: "M",
        gender: "Women",
    },
    Spec {
        id: "w2",
        title: "Cashmere Jumper",
        brand: "Uniqlo",
        category: &["Men", "Clothing", "Knitwear"],
        price: "99.00",
        colour: "Navy Blue",
        size: "L",
        gender: "Men",
    },
    Spec {
        id: "w3",
        title: "Cotton Jumper",
        brand: "Zara",
        category: &["Women", "Clothing", "Knitwear"],
        price: "25.00",
        colour: "Grey",
        size: "S",
        gender: "Women",
    },
    Spec {
        id: "t1",
        title: "Graphic T-Shirt",
        brand: "Adidas",
        category: &["Men", "Clothing", "T-Shirts"],
        price: "19.99",
        colour: "White",
        size: "XL",
        gender: "Men",
    },
    Spec {
        id: "t2",
        title: "Basic T-Shirt",
        brand: "Nike",
        category: &["Women", "Clothing", "T-Shirts"],
        price: "15.00",
        colour: "Black",
        size: "S",
        gender: "Women",
    },
    Spec {
        id: "b1",
        title: "Leather Tote Bag",
        brand: "Zara",
        category: &["Women", "Bags", "Totes"],
        price: "49.00",
        colour: "Brown",
        size: "One Size",
        gender: "Women",
    },
];

fn item(spec: &Spec, day: i64) -> Item {
    let mut attributes = BTreeMap::new();
    attributes.insert("colour".to_string(), ScalarValue::Text(spec.colour.to_string()));
    attributes.insert("size".to_string(), ScalarValue::Text(spec.size.to_string()));
    attributes.insert("gender".to_string(), ScalarValue::Text(spec.gender.to_string()));
    let input = ItemInput {
        id: Some(spec.id.to_string()),
        title: Some(spec.title.to_string()),
        description: Some(format!("{} by {}", spec.title, spec.brand)),
        brand: Some(spec.brand.to_string()),
        category_path: Some(spec.category.iter().map(|c| c.to_string()).collect()),
        price: Some(AmountInput::Text(spec.price.to_string())),
        currency: Some("GBP".to_string()),
        attributes: Some(attributes),
        stock_quantity: Some(if spec.id == "w3" { 0 } else { 5 }),
        created_at: Some(TimeInput::Millis(1_700_000_000_000 + day * 86_400_000)),
        ..Default::default()
    };
    Item::parse(input, Timestamp::from_millis(1_800_000_000_000).unwrap()).unwrap()
}

fn catalog() -> Vec<Item> {
    CATALOG.iter().enumerate().map(|(day, spec)| item(spec, day as i64)).collect()
}

/// Deterministic toy "embeddings": a bag of concept dimensions, so semantic retrieval has real neighbours.
fn toy_vector(text: &str) -> Vec<f32> {
    let concepts: [&[&str]; 6] = [
        &["jacket", "coat", "winter", "padded", "rain"],
        &["shoe", "shoes", "sneaker", "trainers", "running", "ballerinas"],
        &["jumper", "sweater", "knit", "wool", "cashmere", "warm"],
        &["t-shirt", "tee", "shirt", "graphic", "basic"],
        &["bag", "tote", "handbag", "leather"],
        &["denim", "jeans", "blue"],
    ];
    let lower = text.to_lowercase();
    let mut vector: Vec<f32> =
        concepts.iter().map(|words| words.iter().filter(|w| lower.contains(*w)).count() as f32).collect();
    vector.push(0.05);
    vector
}

fn engine(with_vectors: bool) -> SearchEngine {
    let items = catalog();
    let vectors: Vec<Vec<f32>> = items.iter().map(|i| toy_vector(&i.title)).collect();
    SearchEngine::build(items, with_vectors.then_some(&vectors[..]), SearchConfig::default()).unwrap()
}

fn ids(response: &attune_search::SearchResponse<'_>) -> Vec<String> {
    response.hits.iter().map(|h| h.item.id.to_string()).collect()
}

#[test]
fn typo_queries_find_the_item() {
    let engine = engine(false);
    let response = engine.search(&SearchRequest::new("jaket ")).unwrap();
    let found = ids(&response);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found.iter().all(|id| id.starts_with('j')), "{found:?}");

    let response = engine.search(&SearchRequest::new("addidas ")).unwrap();
    let found = ids(&response);
    assert!(!found.is_empty());
    assert!(
        found.iter().all(|id| engine.items()
            [engine.position_of(&attune_core::ItemId::parse(id.clone()).unwrap()).unwrap()]
        .brand
        .as_deref()
            == Some("Adidas")),
        "{found:?}"
    );
}

#[test]
fn exact_match_outranks_typo_match_and_prefix_works() {
    let engine = engine(false);
    // "tote" exactly vs "tots"-like typos: the exact title match must be first.
    let response = engine.search(&SearchRequest::new("leather ")).unwrap();
    assert_eq!(response.hits.len(), 2);
    let response = engine.search(&SearchRequest::new("jum")).unwrap();
    let found = ids(&response);
    assert_eq!(found.len(), 3, "prefix of the last term finds all jumpers: {found:?}");
    assert!(found.iter().all(|id| id.starts_with('w')));
}

#[test]
fn price_phrases_become_filters() {
    let engine = engine(false);
    let response = engine.search(&SearchRequest::new("jumper under 40 pounds")).unwrap();
    assert_eq!(response.parsed.price_max, Some(40.0));
    assert_eq!(response.lexical_text, "jumper");
    let mut found = ids(&response);
    found.sort();
    assert_eq!(found, vec!["w1", "w3"]);
    let response = engine.search(&SearchRequest::new("jacket between £60 and £80")).unwrap();
    assert_eq!(ids(&response), vec!["j3"]);
}

#[test]
fn colour_and_gender_words_are_understood() {
    let engine = engine(false);
    let response = engine.search(&SearchRequest::new("gray jumper")).unwrap();
    let mut found = ids(&response);
    found.sort();
    assert_eq!(found, vec!["w1", "w3"], "grey is the catalog's spelling");
    let response = engine.search(&SearchRequest::new("womens shoes")).unwrap();
    assert_eq!(ids(&response), vec!["s3"]);
    let response = engine.search(&SearchRequest::new("t-shirt size xl")).unwrap();
    assert_eq!(ids(&response), vec!["t1"]);
}

#[test]
fn personalization_changes_order_for_a_brand_fan_only() {
    let engine = engine(true);
    let query_vector = toy_vector("running shoes");
    let mut request = SearchRequest::new("running shoes");
    request.query_vector = Some(&query_vector);
    let anonymous = engine.search(&request).unwrap();
    let anonymous_profile = ShopperProfile::anonymous();
    request.profile = Some(&anonymous_profile);
    let with_empty_profile = engine.search(&request).unwrap();
    assert_eq!(ids(&anonymous), ids(&with_empty_profile));
    assert!(anonymous.hits.iter().all(|h| h.score.personal == 0.0));
    assert_eq!(anonymous.hits[0].item.id.as_str(), "s1", "unpersonalised: the shorter exact title first");

    let items = engine.items();
    let nike: Vec<(&Item, f32)> =
        items.iter().filter(|i| i.brand.as_deref() == Some("Nike")).map(|i| (i, 5.0)).collect();
    let fan = ShopperProfile::from_interactions(nike);
    request.profile = Some(&fan);
    let personal = engine.search(&request).unwrap();
    assert_eq!(personal.hits[0].item.id.as_str(), "s2", "{:?}", ids(&personal));
    assert!(personal.hits[0].score.personal > 0.0);
    assert_eq!(personal.total, anonymous.total);
}

#[test]
fn lexical_only_without_vectors_and_semantic_fallback() {
    let engine_without = engine(false);
    let vector = toy_vector("sweater");
    let mut request = SearchRequest::new("sweater");
    request.query_vector = Some(&vector);
    let response = engine_without.search(&request).unwrap();
    assert_eq!(response.mode, SearchMode::LexicalOnly);
    assert!(response.warnings.iter().any(|w| w.contains("lexical retrieval only")));
    assert_eq!(response.total, 0);

    let engine_with = engine(true);
    let response = engine_with.search(&request).unwrap();
    assert_eq!(response.mode, SearchMode::SemanticFallback);
    assert!(!response.warnings.is_empty());
    assert!(response.hits[0].item.id.as_str().starts_with('w'), "{:?}", ids(&response));
    assert!(response.hits[0].score.semantic.is_some() && response.hits[0].score.lexical.is_none());

    let vector = toy_vector("jacket");
    let mut request = SearchRequest::new("jacket");
    request.query_vector = Some(&vector);
    let response = engine_with.search(&request).unwrap();
    assert_eq!(response.mode, SearchMode::Hybrid);
    let top = &response.hits[0].score;
    assert!(top.lexical.is_some() && top.semantic.is_some() && top.total > 0.0);
}

#[test]
fn facets_count_the_filtered_result_set() {
    let engine = engine(false);
    let response = engine.search(&SearchRequest::new("jacket")).unwrap();
    let facets = response.facets.unwrap();
    let count =
        |list: &[attune_search::FacetCount], value: &str| list.iter().find(|f| f.value == value).map_or(0, |f| f.count);
    assert_eq!(count(&facets.brand, "Adidas"), 1);
    assert_eq!(count(&facets.brand, "Nike"), 1);
    assert_eq!(count(&facets.category, "Men"), 2);
    assert_eq!(count(&facets.subcategory, "Women > Clothing"), 1);
    assert_eq!(count(&facets.colour, "Blue"), 1);
    assert_eq!(facets.price.iter().map(|p| p.count).sum::<usize>(), 3);
    assert_eq!(facets.price.iter().find(|p| p.min == 50.0).map(|p| p.count), Some(3));
}

#[test]
fn structured_filters_predicate_sorting_and_stock() {
    let engine = engine(false);
    let filters = Filters { category_prefix: vec!["women".into()], in_stock_only: true, ..Default::default() };
    let mut request = SearchRequest::new("jumper");
    request.filters = &filters;
    assert_eq!(ids(&engine.search(&request).unwrap()), vec!["w1"], "w3 is out of stock");

    let predicate = |item: &Item| item.brand.as_deref() != Some("Adidas");
    let mut request = SearchRequest::new("shoes");
    request.predicate = Some(&predicate);
    request.sort = SortOrder::PriceDescending;
    assert_eq!(ids(&engine.search(&request).unwrap()), vec!["s2", "s3"], "ballerinas are shoes too");

    let mut request = SearchRequest::new("jacket");
    request.sort = SortOrder::PriceAscending;
    assert_eq!(ids(&engine.search(&request).unwrap()), vec!["j2", "j3", "j1"]);
    request.sort = SortOrder::Newest;
    assert_eq!(ids(&engine.search(&request).unwrap()), vec!["j3", "j2", "j1"]);
}

#[test]
fn autocomplete_from_queries_and_titles() {
    let items = catalog();
    let index = Autocomplete::new([("jackets", 10u64), ("jeans", 3)], items.iter().map(|i| (i.title.as_str(), 0u64)));
    let suggestions = index.suggest("ja", 3);
    assert_eq!(suggestions[0].text, "jackets");
    assert!(index.suggest("runn", 5).iter().any(|s| s.text == "Running Shoes"));
    assert!(index.suggest("runing", 5).iter().any(|s| s.text == "Running Shoes" && s.corrected));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn results_respect_filters_and_pages_are_consistent(
        query in prop::sample::select(vec!["jacket", "shoes", "jumper", "leather", "t-shirt", "nike", "bag", "red"]),
        max_price in prop::option::of(10.0f64..150.0),
        brand in prop::option::of(prop::sample::select(vec!["Nike", "Adidas", "Zara"])),
        in_stock in any::<bool>(),
        page in 1usize..4,
    ) {
        let engine = engine(true);
        let filters = Filters {
            brands: brand.map(|b| vec![b.to_string()]).unwrap_or_default(),
            price_max: max_price,
            in_stock_only: in_stock,
            ..Default::default()
        };
        let vector = toy_vector(query);
        let mut request = SearchRequest::new(query);
        request.query_vector = Some(&vector);
        request.filters = &filters;
        request.limit = 100;
        let all = engine.search(&request).unwrap();
        for hit in &all.hits {
            prop_assert!(filters.accepts(hit.item), "{} violates {:?}", hit.item.id, filters);
        }
        prop_assert_eq!(all.total, all.hits.len());
        let mut paged = Vec::new();
        let mut offset = 0;
        while offset < all.total {
            request.offset = offset;
            request.limit = page;
            let response = engine.search(&request).unwrap();
            prop_assert_eq!(response.total, all.total);
            paged.extend(ids(&response));
            offset += page;
        }
        prop_assert_eq!(paged, ids(&all));
    }

    /// Whatever is typed (misspelt catalog words, unknown words, accents, punctuation, prices), spelling
    /// correction only replaces whole words by single catalog words: the text between them is kept, so the
    /// corrected query splits into as many pieces at whitespace as the typed one. Searching the typed query
    /// reports the same correction.
    #[test]
    fn spelling_correction_replaces_words_and_keeps_the_rest(
        pieces in prop::collection::vec(
            prop::sample::select(vec![
                "leathr", "jaket", "JUMPR", "trainres", "shoes", "Nikee", "zzzz", "wintér", "£40", "under", "t-shirt",
                "bag,", "ceramic", "teapto", "!!", "size", "xl", "kors",
            ]),
            0..6,
        ),
        trailing_space in any::<bool>(),
    ) {
        let engine = engine(false);
        let query = format!("{}{}", pieces.join(" "), if trailing_space { " " } else { "" });
        let corrected = engine.correct_spelling(&query);
        if let Some(corrected) = &corrected {
            prop_assert_ne!(corrected, &query);
            prop_assert_eq!(corrected.split_whitespace().count(), query.split_whitespace().count());
            prop_assert_eq!(corrected.ends_with(' '), query.ends_with(' '));
        }
        if !query.trim().is_empty() {
            prop_assert_eq!(engine.search(&SearchRequest::new(&query)).unwrap().corrected_query, corrected);
        }
    }
}

#[test]
fn real_fashion_catalog_if_present() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/catalog");
    let Ok(names) = std::fs::read_to_string(path.join("fashion_product_images_styles_names.csv")) else {
        eprintln!("skipped: no fashion catalog at {}", path.display());
        return;
    };
    let now = Timestamp::from_millis(1_700_000_000_000).unwrap();
    let items: Vec<Item> = names
        .lines()
        .skip(1)
        .enumerate()
        .filter(|(_, title)| !title.trim().is_empty())
        .map(|(row, title)| {
            let input = ItemInput {
                id: Some(format!("p{row}")),
                title: Some(title.trim().trim_matches('"').to_string()),
                ..Default::default()
            };
            Item::parse(input, now).unwrap()
        })
        .collect();
    assert!(items.len() > 40_000);
    let engine = SearchEngine::build(items, None, SearchConfig::default()).unwrap();
    let mut request = SearchRequest::new("jaket");
    request.retrieval = Retrieval::LexicalOnly;
    let response = engine.search(&request).unwrap();
    assert!(response.total > 100, "{}", response.total);
    assert!(response.hits.iter().all(|h| h.item.title.to_lowercase().contains("jacket")));
    let response = engine.search(&SearchRequest::new("Puma men black sport shoe")).unwrap();
    let top = response.hits[0].item.title.to_lowercase();
    assert!(["puma", "men", "black", "shoe"].iter().all(|w| top.contains(w)), "{top}");
}

/// An item with only an id and a title.
fn titled(id: &str, title: &str) -> Item {
    let input = ItemInput { id: Some(id.to_string()), title: Some(title.to_string()), ..Default::default() };
    Item::parse(input, Timestamp::from_millis(1_800_000_000_000).unwrap()).unwrap()
}

/// BM25 alone can rank a short title holding only the rarest query word above every title holding all of
/// them; with `all_terms_first` (the default) the titles holding every word come first, in lexical order.
#[test]
fn hits_holding_every_query_word_come_first() {
    let mut items = vec![
        titled("partial", "Winter"),
        titled("full", "Quilted Hooded Long Padded Outdoor Jacket For Winter Weather And Rainy Days"),
    ];
    for i in 0..12 {
        items.push(titled(&format!("jacket-{i}"), "Jacket"));
    }
    let mut engine = SearchEngine::build(items, None, SearchConfig::default()).unwrap();
    let first =
        |engine: &SearchEngine, query: &str| ids(&engine.search(&SearchRequest::new(query)).unwrap())[0].clone();
    assert_eq!(first(&engine, "winter jacket"), "full");
    // A word no item holds (a brand the shop does not carry) cannot be held by any hit: it does not empty the
    // group, and the hit holding every other word still comes first.
    assert_eq!(first(&engine, "zanellato winter jacket"), "full");
    engine.set_config(SearchConfig { all_terms_first: false, ..SearchConfig::default() });
    assert_eq!(
        first(&engine, "winter jacket"),
        "partial",
        "the premise: BM25 alone puts the short partial match first"
    );
    assert_eq!(first(&engine, "zanellato winter jacket"), "partial");
    // With vectors tuned to the catalog only an item whose category is indexed too joins the group: the title
    // alone holding every word is left to the fused order.
    engine.set_config(SearchConfig { all_terms_needs_category: true, ..SearchConfig::default() });
    assert_eq!(first(&engine, "winter jacket"), "partial", "no item has a category path");
    let mut items = vec![
        titled("partial", "Winter"),
        titled("full", "Quilted Hooded Long Padded Outdoor Jacket For Winter Weather And Rainy Days"),
    ];
    let mut described = titled("described", "Quilted Hooded Long Padded Outdoor Jacket For Winter Weather And Rain");
    described.category_path = vec!["Outerwear".to_string(), "Jackets".to_string()];
    items.push(described);
    items.extend((0..12).map(|i| titled(&format!("jacket-{i}"), "Jacket")));
    let config = SearchConfig { all_terms_needs_category: true, ..SearchConfig::default() };
    let engine = SearchEngine::build(items, None, config).unwrap();
    assert_eq!(first(&engine, "winter jacket"), "described");
}

/// With a lexical coordination power, a lexical hit holding only some of the query's words weighs less in the
/// fusion: a brown bag that holds the rare "bag" no longer outranks the black handbag that the similarity finds
/// nearest, while a hit holding every word keeps its full lexical part.
#[test]
fn lexical_coordination_weighs_partial_matches_down() {
    let unit = |cosine: f32| vec![cosine, (1.0 - cosine * cosine).sqrt(), 0.0];
    let mut items = vec![titled("brown-bag", "Brown Bag"), titled("black-handbag", "Black Leather Handbag")];
    let mut vectors = vec![unit(0.45), unit(0.9)];
    for i in 0..30 {
        items.push(titled(&format!("shirt-{i}"), "Black Shirt"));
        vectors.push(vec![0.0, 0.0, 1.0]);
    }
    let plain = SearchConfig { lexical_coordination: 0.0, ..SearchConfig::for_catalog_tuned_vectors() };
    let mut engine = SearchEngine::build(items.clone(), Some(&vectors), plain).unwrap();
    let query_vector = [1.0, 0.0, 0.0];
    let first_two = |engine: &SearchEngine, query: &str| {
        let mut request = SearchRequest::new(query);
        request.query_vector = Some(&query_vector);
        let response = engine.search(&request).unwrap();
        assert_eq!(response.mode, SearchMode::Hybrid);
        ids(&response)[..2].to_vec()
    };
    assert_eq!(first_two(&engine, "black bag"), ["brown-bag", "black-handbag"], "the premise: BM25 on the rare word");
    engine.set_config(SearchConfig::for_catalog_tuned_vectors());
    assert!(SearchConfig::for_catalog_tuned_vectors().lexical_coordination > 0.0);
    assert_eq!(first_two(&engine, "black bag"), ["black-handbag", "brown-bag"]);
    // The breakdown says how much of the query each lexical hit holds; a semantic-only match holds none.
    let mut request = SearchRequest::new("black bag");
    request.query_vector = Some(&query_vector);
    let response = engine.search(&request).unwrap();
    let held = |id: &str| response.hits.iter().find(|h| h.item.id.to_string() == id).unwrap().score.words_held;
    assert_eq!((held("black-handbag"), held("brown-bag"), held("shirt-0")), (Some(0.5), Some(0.5), Some(0.5)));
    let response = engine.search(&SearchRequest { query_vector: Some(&query_vector), ..SearchRequest::new("bag") });
    let hits = response.unwrap().hits;
    assert_eq!(hits.iter().map(|h| h.score.words_held).collect::<Vec<_>>()[..2], [Some(1.0), None]);
    // Holding every word, the brown bag keeps its lexical part ("bag" alone is the whole query).
    assert_eq!(first_two(&engine, "bag"), ["brown-bag", "black-handbag"]);
}

#[test]
fn a_word_one_edit_from_a_catalog_word_is_read_as_its_typo() {
    let mut items =
        vec![titled("winter-jacket", "Quilted Hooded Long Padded Outdoor Jacket For Winter Weather And Rainy Days")];
    items.extend((0..12).map(|i| titled(&format!("jacket-{i}"), "Jacket")));
    items.extend((0..60).map(|i| titled(&format!("shirt-{i}"), "Cotton Shirt")));
    let engine = SearchEngine::build(items, None, SearchConfig::default()).unwrap();
    let first = |query: &str| ids(&engine.search(&SearchRequest::new(query)).unwrap())[0].clone();
    assert_eq!(first("winter jacket"), "winter-jacket");
    // "wintr" is no catalog word; read as "winter", some hit holds every word, so that hit comes first (left
    // out instead, the short "Jacket" titles would).
    assert_eq!(first("wintr jacket"), "winter-jacket");
    // A word with no catalog word within one edit is left out.
    assert_eq!(first("zanellato jacket"), "jacket-0");
}

/// Spelling correction reads a word no item holds as the catalog word it is a typo of and says so; it can be
/// turned off. A word the shop does not use stays as typed when its only neighbour is a rare catalog word, a
/// catalog word is read as a typo only of a far more common one, and a word being typed is left for prefix
/// matching.
#[test]
fn misspelt_words_are_corrected_against_the_catalog() {
    let mut items: Vec<Item> = (0..3).map(|i| titled(&format!("winter-jacket-{i}"), "Padded Winter Jacket")).collect();
    items.push(titled("koro", "Koro Women Bag"));
    items.push(titled("shit", "Shit Happens Tshirt"));
    items.extend((0..1200).map(|i| titled(&format!("top-{i}"), "Women Cotton Top")));
    items.extend((0..150).map(|i| titled(&format!("shirt-{i}"), "Men Formal Shirts")));
    let engine = SearchEngine::build(items, None, SearchConfig::default()).unwrap();

    let response = engine.search(&SearchRequest::new("wintr jacket")).unwrap();
    assert_eq!(response.corrected_query.as_deref(), Some("winter jacket"));
    assert_eq!(response.lexical_text, "winter jacket");
    assert_eq!(ids(&response)[0], "winter-jacket-0");
    let mut as_typed = SearchRequest::new("wintr jacket");
    as_typed.correct_spelling = false;
    let response = engine.search(&as_typed).unwrap();
    assert_eq!(response.corrected_query, None);
    assert_eq!(response.lexical_text, "wintr jacket");

    // Only the misspelt word changes; price phrases and numbers are no typos.
    assert_eq!(
        engine.correct_spelling("Padded  WINTR jacket under 40").as_deref(),
        Some("Padded  winter jacket under 40")
    );
    assert_eq!(engine.correct_spelling("winter jacket"), None);
    // The last word of a query still being typed may be a prefix; once followed by a space it is a word.
    assert_eq!(engine.correct_spelling("padded winte"), None);
    assert_eq!(engine.correct_spelling("padded winte ").as_deref(), Some("padded winter "));
    // "kors" is one edit from "koro", which one of 1,355 items holds (under 0.1%): a brand, not a typo.
    assert_eq!(engine.correct_spelling("kors women"), None);
    // "shits" is a catalog word, but 150 times as many items hold "shirts", one edit away ...
    assert_eq!(engine.correct_spelling("men shits").as_deref(), Some("men shirts"));
    // ... unless no item holds the query so read.
    assert_eq!(engine.correct_spelling("women shits"), None);
}

/// A product only the semantic list finds counts only when it is close to the query: a query that matches no
/// word and is near nothing returns nothing (and `total` and the facets say so), while a close neighbour stays.
#[test]
fn semantic_only_hits_count_only_above_the_similarity_threshold() {
    let unit = |cosine: f32| vec![cosine, (1.0 - cosine * cosine).sqrt(), 0.0];
    let items = vec![titled("lantern", "White metal lantern"), titled("mug", "Blue mug"), titled("candle", "Candle")];
    let vectors = vec![unit(0.2), unit(0.1), unit(0.9)];
    let config = SearchConfig { semantic_min_similarity: 0.5, ..SearchConfig::default() };
    let engine = SearchEngine::build(items, Some(&vectors), config).unwrap();
    let query_vector = [1.0, 0.0, 0.0];
    let far = [0.0, 0.0, 1.0];
    let search = |query: &str, vector: &[f32]| {
        let response =
            engine.search(&SearchRequest { query_vector: Some(vector), ..SearchRequest::new(query) }).unwrap();
        (response.total, ids(&response), response.facets.map(|f| f.price.iter().map(|p| p.count).sum::<usize>()))
    };
    assert_eq!(search("xyzzy", &far), (0, Vec::<String>::new(), Some(0)), "noise matches nothing");
    let (total, found, _) = search("lantern", &query_vector);
    assert_eq!(
        (total, found),
        (2, vec!["lantern".to_string(), "candle".to_string()]),
        "the lexical hit and one close neighbour"
    );
    let open = SearchConfig { semantic_min_similarity: f32::MIN, ..SearchConfig::default() };
    let engine = SearchEngine::build(engine.items().to_vec(), Some(&vectors), open).unwrap();
    let response = engine.search(&SearchRequest { query_vector: Some(&far), ..SearchRequest::new("xyzzy") }).unwrap();
    assert_eq!(response.total, 3, "without the threshold every neighbour counts");
}
