//! The storefront's privacy panel: a visitor sees what the shop keeps about them and what it is used for,
//! changes their consent to each purpose (recorded in their consent ledger, source `storefront`, and applied
//! from the next page on), and downloads their data as JSON.

use super::context::{PageQuery, PageResult};
use super::format::date_time;
use super::layout::shop_page;
use super::shop::Request;
use crate::state::AppState;
use attune_core::{
    AnonymousId, ConsentChangeInput, ConsentSource, ConsentStatement, DeclaredPurpose, Purpose, Timestamp,
};
use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/shop/privacy", get(privacy_page).post(save_choices))
        .route("/shop/privacy/export", get(download))
}

/// Each purpose: its form field, its name and what it means for the visitor.
const PURPOSES: [(Purpose, &str, &str, &str); 3] = [
    (
        Purpose::Personalization,
        "personalization",
        "Personalization",
        "Your views, basket and orders here choose the recommendations you see and order your search results.",
    ),
    (
        Purpose::Analytics,
        "analytics",
        "Analytics",
        "Your activity is counted in the shop's statistics (what sells, what is searched).",
    ),
    (Purpose::Marketing, "marketing", "Marketing", "The shop may show you offers and reminders picked for you."),
];

#[derive(Debug, Default, Deserialize)]
struct PanelParams {
    saved: Option<String>,
}

async fn privacy_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    PageQuery(params): PageQuery<PanelParams>,
) -> PageResult<Response> {
    let request = Request::new(&state, &headers).await?;
    let declared = declared_purposes(&state, &request).await?;
    let body = panel(&request, &declared, params.saved.is_some());
    let markup = shop_page(&request.shell(""), "Your privacy", body);
    Ok(request.respond(StatusCode::OK, markup, Vec::new()))
}

/// The shop's own purposes, from its settings.
async fn declared_purposes(state: &AppState, request: &Request) -> PageResult<Vec<DeclaredPurpose>> {
    let tenant = request.shop.tenant.clone();
    Ok(state.run(move |engine| Ok(engine.consents().settings(&tenant)?.purposes)).await?)
}

fn panel(request: &Request, declared: &[DeclaredPurpose], saved: bool) -> Markup {
    let consent = &request.consent;
    html! {
        div.shop-container id="privacy-panel" {
            div.section-header { div {
                h1 { "Your privacy" }
                p.muted {
                    "This shop runs its recommendations and search on its own machines: what you do here is not sent to anyone else. "
                    "You are not signed in; the shop knows you by a random visitor id in a cookie."
                }
            } }
            @if saved { p.alert.alert-success id="privacy-saved" { "Your choices are saved and apply from now on." } }
            form id="privacy-form" method="post" action="/shop/privacy" {
                div.privacy-purposes {
                    @for (purpose, field, name, meaning) in PURPOSES {
                        label.privacy-purpose {
                            input type="checkbox" name=(field) id=(format!("consent-{field}")) value="on" checked[consent.consent.allows(&purpose)];
                            span { strong { (name) } br; span.muted { (meaning) } }
                        }
                    }
                    @for own in declared {
                        label.privacy-purpose {
                            input type="checkbox" name=(format!("{OWN_PREFIX}{}", own.name)) id=(format!("consent-{}", own.name)) value="on" checked[consent.consent.allows(&Purpose::from_name(&own.name))];
                            span { strong { (own.name.replace('_', " ")) } br; span.muted { (own.description) } }
                        }
                    }
                }
                button.button.primary type="submit" id="save-privacy" { "Save my choices" }
            }
            section.shop-section id="privacy-history" {
                h2 { "Your choices so far" }
                @if consent.history.is_empty() {
                    p.muted { "You have not chosen yet: the shop's default applies (shown above)." }
                } @else {
                    ol.privacy-history {
                        @for statement in &consent.history {
                            li { (date_time(statement.recorded_at)) " · " (purpose_name(&statement.purpose)) " "
                                @if statement.granted { "granted" } @else { "withdrawn" } }
                        }
                    }
                }
            }
            section.shop-section id="privacy-data" {
                h2 { "Your data" }
                p.muted { "The products you viewed and put in your basket, your orders here, and your choices above. Events older than the shop's retention period are deleted." }
                a.button id="download-my-data" href="/shop/privacy/export" { "Download my data" }
            }
        }
    }
}

/// A purpose's name as the panel shows it.
fn purpose_name(purpose: &Purpose) -> String {
    match PURPOSES.iter().find(|(p, ..)| p == purpose) {
        Some((_, _, name, _)) => name.to_string(),
        None => purpose.name().replace('_', " "),
    }
}

/// The form field of a shop's own purpose: this prefix and its name.
const OWN_PREFIX: &str = "purpose_";

/// Records the purposes whose choice differs from what is in force (all of them on a first choice, so the
/// ledger shows the visitor chose), then shows the panel again.
/// The panel's form (a checkbox is present only when ticked), recorded as a change of every purpose whose
/// choice differs from what is in force, or of all of them on a first choice.
async fn save_choices(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(ticked): Form<HashMap<String, String>>,
) -> PageResult<Response> {
    let request = Request::new(&state, &headers).await?;
    let declared = declared_purposes(&state, &request).await?;
    let change = choices(&request, &declared, &ticked);
    if let (Ok(statements), Ok(visitor)) = (
        ConsentStatement::parse_change(&change, ConsentSource::Storefront, Timestamp::now()),
        AnonymousId::parse(request.visitor.anonymous_id.clone()),
    ) {
        let tenant = request.shop.tenant.clone();
        state.run(move |engine| engine.record_visitor_consent(&tenant, &visitor, &statements)).await?;
    }
    Ok(request.redirect("/shop/privacy?saved=1", Vec::new()))
}

fn choices(request: &Request, declared: &[DeclaredPurpose], ticked: &HashMap<String, String>) -> ConsentChangeInput {
    let (current, first) = (&request.consent.consent, request.consent.history.is_empty());
    let changed = |purpose: &Purpose, field: &str| {
        let wanted = ticked.contains_key(field);
        (first || current.allows(purpose) != wanted).then_some(wanted)
    };
    let purposes = declared
        .iter()
        .filter_map(|own| {
            let field = format!("{OWN_PREFIX}{}", own.name);
            Some((own.name.clone(), changed(&Purpose::from_name(&own.name), &field)?))
        })
        .collect();
    ConsentChangeInput {
        personalization: changed(&Purpose::Personalization, "personalization"),
        analytics: changed(&Purpose::Analytics, "analytics"),
        marketing: changed(&Purpose::Marketing, "marketing"),
        purposes,
        ..Default::default()
    }
}

/// What a visitor downloads.
#[derive(Serialize)]
struct VisitorData {
    anonymous_id: String,
    exported_at: Timestamp,
    consent: attune_core::Consent,
    consent_history: Vec<ConsentStatement>,
    /// Their own actions (views, basket changes, orders), newest first.
    activity: Vec<attune_core::EventInput>,
    note: &'static str,
}

async fn download(State(state): State<AppState>, headers: HeaderMap) -> PageResult<Response> {
    let request = Request::new(&state, &headers).await?;
    let (tenant, anonymous_id) = (request.shop.tenant.clone(), request.visitor.anonymous_id.clone());
    let activity = match AnonymousId::parse(anonymous_id.clone()) {
        Ok(visitor) => {
            state.run(move |engine| attune_engine::export::visitor_activity(engine, &tenant, &visitor)).await?
        }
        Err(_) => Vec::new(),
    };
    let data = VisitorData {
        anonymous_id,
        exported_at: Timestamp::now(),
        consent: request.consent.consent.clone(),
        consent_history: request.consent.history.clone(),
        activity: activity.iter().map(attune_core::Event::to_input).collect(),
        note: "recorded under this browser's visitor id in this shop; nothing is shared with anyone else",
    };
    let body = serde_json::to_vec_pretty(&data).map_err(crate::error::ApiError::internal)?;
    let headers = [
        (CONTENT_TYPE, "application/json".to_string()),
        (CONTENT_DISPOSITION, "attachment; filename=\"my-data.json\"".to_string()),
    ];
    Ok(request.finish((headers, body).into_response()))
}
